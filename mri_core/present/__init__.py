"""present layer of mri_core (see DESIGN.md, "Shape")."""
