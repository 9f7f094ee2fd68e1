"""Feature extraction (numpy, shared by edge and training) and, later, training and export."""
