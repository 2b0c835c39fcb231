"""`octopanel chart`: a printable key chart of a keymap, at real key size (layouts, labels, text fitting, SVG)."""
