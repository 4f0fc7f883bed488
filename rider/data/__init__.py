"""The data stages: raw computational sequences (.csd) → word-aligned sequences → the padded HDF5 cache."""
