"""Public datasets read in the layouts their publishers distribute.

One thin adapter per dataset onto the existing machinery (file-based 2-D segmentation, volumes,
COCO-style detection); what they share lives here:

- :mod:`datamodules.public.layout` — the one error for a root that does not match a published layout;
- :mod:`datamodules.public.splits` — committed, versioned split files, intersected with what a root
  holds, and the split's identity (name, hash, counts) that goes into ``metrics.json``;
- :mod:`datamodules.public.download` — verified downloads (resumable, SHA-256 checked, extracted
  atomically) and the message for datasets that need a registration.
"""
