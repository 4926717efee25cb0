"""Boot and deploy images: manifests, the verified cache, import jobs (see docs/images.md)."""
