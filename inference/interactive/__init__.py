"""Interactive (prompt-driven) segmentation in the reader (issue 17): engines behind one interface."""
