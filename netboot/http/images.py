"""Image serving and the image API.

    GET /images/<kind>/<name>/<version>/<file>   one file of a cached image version
    GET /api/images                              versions, current ones, import jobs

Files are checked on every use against the stamp their last full verification left
(size, mtime, inode): a file truncated or replaced behind netboot's back is refused
with 503 and a log line instead of being sent to a node. Serving itself is
twisted.web.static.File (Range, Content-Length, streamed through a producer).
"""

from __future__ import annotations

from dataclasses import asdict

from twisted.logger import Logger
from twisted.web import resource, static
from twisted.web.server import Request

from netboot.http.enlist import json_response
from netboot.images.cache import ImageCache
from netboot.images.jobs import list_jobs
from netboot.images.manifest import ManifestError
from netboot.images.verify import ImageRejected

log = Logger(namespace="netboot.images")


class ImageFiles(resource.Resource):
    isLeaf = True

    def __init__(self, cache: ImageCache) -> None:
        super().__init__()
        self.cache = cache

    def render(self, request: Request) -> bytes | int:
        parts = [p.decode("utf-8", "replace") for p in request.postpath]
        if len(parts) != 4 or request.method not in (b"GET", b"HEAD"):
            return _error(request, 404, "not found")
        kind, name, version, filename = parts
        try:
            image = self.cache.get(kind, name, version)
            if image is None:
                return _error(request, 404, "no such image version")
            path = self.cache.checked_path(image, filename)
        except ManifestError:
            return _error(request, 404, "not found")
        except ImageRejected as exc:
            log.error("refusing to serve {file}: {error}", file="/".join(parts), error=str(exc))
            return _error(request, 503, f"image refused: {exc}")
        return static.File(str(path), defaultType="application/octet-stream").render(request)


class ImagesAPI(resource.Resource):
    isLeaf = True

    def __init__(self, cache: ImageCache) -> None:
        super().__init__()
        self.cache = cache

    def render_GET(self, request: Request) -> bytes:  # noqa: N802 (twisted API name)
        images = [
            {
                "kind": i.manifest.kind,
                "name": i.manifest.name,
                "version": i.manifest.version,
                "arch": i.manifest.arch,
                "current": i.current,
                "size": i.manifest.total_size,
                "files": {f.name: {"sha256": f.sha256, "size": f.size} for f in i.manifest.files},
            }
            for i in self.cache.images()
        ]
        jobs = [asdict(j) for j in list_jobs(self.cache)]
        return json_response(request, 200, {"images": images, "jobs": jobs})


def _error(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return message.encode() + b"\n"
