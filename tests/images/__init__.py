"""Tests of the images: their Dockerfiles, lock files and build contexts."""
