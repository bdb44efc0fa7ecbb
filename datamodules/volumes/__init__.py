"""3-D volumes: the embedded synthetic volumes, NIfTI folders, 3-D patches, augmentation and preprocessing.

Arrays are ``(C, X, Y, Z)`` images and ``(X, Y, Z)`` label maps in the voxel order of the NIfTI file
(nibabel's), with ``spacing`` in mm per axis; the last axis is the through-plane (slice) axis, so
"in-plane" means axes X and Y.
"""
