"""``/api/deploy/<system_id>/...``: what a deploying node's installer talks to.

    GET  boot.ipxe            the iPXE script while DEPLOYING: the installer (image or
                              Debian installer), or "boot the local disk" once installed
    GET  config               the installer's settings (pins the images of this deploy)
    GET  seed/user-data       cloud-init NoCloud seed: the deploy call's user_data,
    GET  seed/meta-data       instance id, hostname and the owner's SSH keys,
    GET  seed/cloud.cfg       netboot's cloud-init settings (phone home)
    POST event?stage=S        a progress event (body: text)
    POST done?status=ok|failed   the installer finished (body: its log)
    POST phone-home/<token>   cloud-init's phone_home: the node becomes DEPLOYED
    GET  preseed/<token>      the Debian installer's preseed, rendered per node
    GET  log                  the last installer log
    GET  erase-log            the last disk erase log

A node in DISK_ERASING (release with erase) boots the same installer with
``netboot.purpose=erase``; its ``config``, ``event`` and ``done`` calls are answered by
netboot/http/erase.py. A node entering or in rescue mode boots it with
``netboot.purpose=rescue``: netboot/http/rescue.py answers those.

Node callbacks prove themselves with the node's token (``Authorization: Bearer``, as
/metadata does; in the path where the caller cannot set headers: cloud-init's phone
home, the Debian installer's preseed URL). ``boot.ipxe`` and ``config`` answer only
while the node is DEPLOYING and not yet installed: they are what hands the token to the
node, like the commissioning kernel command line does.
"""

from __future__ import annotations

import contextlib
import hmac
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from jinja2 import Environment, FileSystemLoader, PackageLoader, StrictUndefined
from twisted.logger import Logger
from twisted.web import resource
from twisted.web.server import Request

from netboot.http import erase, rescue
from netboot.http.enlist import json_response
from netboot.http.plaintext import text as _text
from netboot.images.cache import ImageCache, ImageVersion
from netboot.images.deploycfg import (
    DeployConfigError,
    DeploySettings,
    deploy_method,
    fqdn,
    installer_env,
    instance_id,
    meta_data,
    user_data,
)
from netboot.images.installerboot import DI_IMAGE, INSTALLER_IMAGE, installer_boot
from netboot.images.verify import ImageRejected
from netboot.nodes.lifecycle import IllegalTransition, NodeStatus
from netboot.store.models import Node

log = Logger(namespace="netboot.deploy")

MAX_LOG_BYTES = 4 << 20
# What the iPXE script's comment names instead of the image, per installer purpose.
_IMAGE_REF = {"erase": "erase the disks", "rescue": "rescue shell"}
MAX_EVENT_BYTES = 4096
_STAGE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class DeployResource(resource.Resource):
    """/api/deploy: one child per system_id."""

    def __init__(
        self,
        actions,
        settings: DeploySettings,
        http_base: str,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.actions = actions
        self.store = actions.store
        self.settings = settings
        self.cache = ImageCache(settings.images_dir)
        self.http_base = http_base
        self.clock = clock
        self.templates = Environment(
            loader=PackageLoader("netboot", "templates"),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self.preseeds = Environment(
            loader=FileSystemLoader(str(settings.preseeds_dir)),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )

    def getChild(self, path: bytes, request: Request) -> resource.Resource:  # noqa: N802
        return _NodeDeploy(self, path.decode("ascii", "replace"))


class _NodeDeploy(resource.Resource):
    isLeaf = True

    def __init__(self, parent: DeployResource, system_id: str) -> None:
        super().__init__()
        self.p = parent
        self.system_id = system_id

    # -- dispatch -----------------------------------------------------------------------

    def render(self, request: Request) -> bytes:
        path = [x.decode("utf-8", "replace") for x in request.postpath if x]
        method = request.method.decode("ascii", "replace")
        peer = getattr(request.getClientAddress(), "host", "?")
        node = self.p.store.node(self.system_id)
        if node is None:
            return _text(request, 404, "unknown node")
        actor = f"node@{peer}"
        route = (method, path[0] if path else "")
        try:
            if route == ("GET", "boot.ipxe") and len(path) == 1:
                return self.boot_ipxe(request, node)
            if route == ("GET", "config") and len(path) == 1:
                return self.config(request, node, actor)
            if route == ("GET", "log") and len(path) == 1:
                dep = self.p.store.deployment(node.system_id)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                return dep.log if dep else b""
            if route == ("GET", "erase-log") and len(path) == 1:
                gone = self.p.store.erasure(node.system_id)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                return gone.log if gone else b""
            if route == ("POST", "phone-home") and len(path) == 2:
                if not _same(path[1], node.token):
                    return _text(request, 401, "unknown node or bad token")
                return self.phone_home(request, node, actor)
            if route == ("GET", "preseed") and len(path) == 2:
                if not _same(path[1], node.token):
                    return _text(request, 401, "unknown node or bad token")
                return self.preseed(request, node)
            if not _bearer_ok(request, node):
                log.warn("deploy {path} from {peer}: bad token", path="/".join(path), peer=peer)
                return _text(request, 401, "unknown node or bad token")
            if route == ("GET", "seed") and len(path) == 2:
                return self.seed(request, node, path[1])
            if route == ("POST", "event") and len(path) == 1:
                return self.event(request, node, actor)
            if route == ("POST", "done") and len(path) == 1:
                return self.done(request, node, actor)
        except IllegalTransition as exc:
            return _text(request, 409, str(exc))
        return _text(request, 404, "not found")

    # -- boot ---------------------------------------------------------------------------

    def boot_ipxe(self, request: Request, node: Node) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        common = {
            "hostname": node.hostname,
            "system_id": node.system_id,
            "http_base": self.p.http_base,
        }
        erasing = node.status is NodeStatus.DISK_ERASING
        rescuing = node.status in rescue.RESCUE_BOOT
        if (
            not erasing
            and not rescuing
            and (node.status is not NodeStatus.DEPLOYING or self._installed(node))
        ):
            log.info("deploy boot.ipxe for {host}: local disk", host=node.hostname)
            return self._render("ipxe/local.ipxe.j2", mac="", **common)
        purpose = "erase" if erasing else ("rescue" if rescuing else "deploy")
        try:
            boot = installer_boot(
                node, self.p.cache, self.p.http_base, purpose, self.p.settings.domain
            )
        except (DeployConfigError, ImageRejected) as exc:
            if erasing:
                erase.fail(self.p, node, f"cannot boot the installer: {exc}", b"")
            elif rescuing:
                rescue.fail(self.p, node, f"cannot boot the installer: {exc}")
            else:
                self._fail(node, f"cannot boot the installer: {exc}", b"")
            return self._render("ipxe/deploy-error.ipxe.j2", error=_ipxe_safe(str(exc)), **common)
        urls = {
            "kernel_url": boot.kernel_url,
            "initrd_url": boot.initrd_url,
            "initrd_name": boot.initrd_name,
            "installer_ref": boot.ref,
            "params": boot.params,
        }
        log.info(
            "deploy boot.ipxe for {host}: {purpose} ({method}) via {ref}",
            host=node.hostname,
            purpose=purpose,
            method=boot.method,
            ref=boot.ref,
        )
        if boot.method == "preseed":
            return self._render("ipxe/deploy-preseed.ipxe.j2", **urls, **common)
        return self._render(
            "ipxe/deploy-installer.ipxe.j2",
            image_ref=_IMAGE_REF.get(purpose) or node.distro_series or "(default)",
            **urls,
            **common,
        )

    def config(self, request: Request, node: Node, actor: str) -> bytes:
        if node.status is NodeStatus.DISK_ERASING:
            return erase.config(self.p, request, node, actor)
        if node.status in rescue.RESCUE_BOOT:
            return rescue.config(self.p, request, node, actor)
        if node.status is not NodeStatus.DEPLOYING:
            return _text(request, 409, f"node is {node.status.label}, not deploying")
        if self._installed(node):
            return _text(request, 409, "already installed: boot the local disk")
        try:
            image = self._deploy_image(node)
            self.p.cache.checked_path(image, _tarball(image))
            env = installer_env(node, image, self.p.http_base, self.p.settings)
        except (DeployConfigError, ImageRejected) as exc:
            self._fail(node, f"cannot configure the installer: {exc}", b"")
            return _text(request, 409, str(exc))
        installer = self.p.cache.get("boot", INSTALLER_IMAGE)
        episode = self.p.store.deploy_episode(node.system_id) or self.p.clock()
        self.p.store.begin_deployment(
            node.system_id,
            episode,
            deploy_method(node),
            image.ref,
            installer.ref if installer else "",
            self.p.clock(),
        )
        self.p.store.deployment_progress(
            node.system_id, "config", f"installer started; image {image.ref}", self.p.clock(), actor
        )
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return env.encode()

    def _deploy_image(self, node: Node) -> ImageVersion:
        series = node.distro_series or "bookworm"
        image = self.p.cache.find_deploy(series, node.architecture.split("/")[0] or "amd64")
        if image is None:
            raise DeployConfigError(
                f"no deploy image for {series!r}: build one (images/deploy/build.sh) and "
                "import it with `netboot images import`"
            )
        return image

    # -- node callbacks -----------------------------------------------------------------

    def seed(self, request: Request, node: Node, name: str) -> bytes:
        dep = self.p.store.current_deployment(node.system_id)
        episode = dep.episode if dep else (self.p.store.deploy_episode(node.system_id) or 0.0)
        domain = self.p.settings.domain
        if name == "user-data":
            body = user_data(self.p.store.user_data(node.system_id))
        elif name == "meta-data":
            keys = self.p.store.ssh_keys(node.owner) if node.owner else []
            body = meta_data(node, instance_id(node, episode), keys, domain)
        elif name == "cloud.cfg":
            body = (
                self.p.preseeds.get_template("cloud-init.cfg.j2")
                .render(
                    hostname=node.hostname,
                    fqdn=fqdn(node, domain),
                    system_id=node.system_id,
                    phone_home_url=f"{self._api(node)}/phone-home/{node.token}",
                    http_base=self.p.http_base,
                )
                .encode()
            )
        else:
            return _text(request, 404, "no such seed file")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return body

    def event(self, request: Request, node: Node, actor: str) -> bytes:
        stage = _query(request, "stage") or ""
        if not _STAGE.match(stage):
            return _text(request, 400, "stage: lower-case word expected")
        assert request.content is not None
        message = request.content.read(MAX_EVENT_BYTES).decode("utf-8", "replace")
        if node.status is NodeStatus.DISK_ERASING:
            return erase.event(self.p, request, node, actor, stage, message)
        if node.status in rescue.RESCUE_BOOT:
            return rescue.event(self.p, request, node, actor, stage, message)
        if node.status is not NodeStatus.DEPLOYING:
            return _text(request, 409, f"node is {node.status.label}, not deploying")
        self.p.store.deployment_progress(node.system_id, stage, message, self.p.clock(), actor)
        log.info(
            "deploy {host} {stage}: {message}", host=node.hostname, stage=stage, message=message
        )
        return _text(request, 200, "ok")

    def done(self, request: Request, node: Node, actor: str) -> bytes:
        status = _query(request, "status")
        if status not in ("ok", "failed"):
            return _text(request, 400, "status: ok or failed expected")
        assert request.content is not None
        body = request.content.read(MAX_LOG_BYTES)
        if node.status is NodeStatus.DISK_ERASING:
            return erase.done(self.p, request, node, actor, status == "ok", body)
        if node.status in rescue.RESCUE_BOOT:
            return rescue.done(self.p, request, node, actor, status == "ok", body)
        if node.status is not NodeStatus.DEPLOYING:
            return _text(request, 409, f"node is {node.status.label}, not deploying")
        if status == "ok":
            self.p.store.deployment_finished(node.system_id, True, body, self.p.clock(), actor)
            log.info(
                "deploy {host}: installed; PXE answer is now the local disk", host=node.hostname
            )
            return _text(request, 200, "ok: boot the local disk")
        self._fail(node, "installer failed: " + _last_error(body), body, actor)
        return _text(request, 200, "recorded")

    def phone_home(self, request: Request, node: Node, actor: str) -> bytes:
        if node.status is NodeStatus.DEPLOYED:
            return _text(request, 200, "already deployed")
        done = self.p.actions.deployment_done(
            node.system_id, actor, True, "cloud-init phoned home: deployed"
        )
        log.info(
            "deploy {host}: cloud-init phoned home -> {status}",
            host=node.hostname,
            status=done.status.name,
        )
        return _text(request, 200, "deployed")

    def preseed(self, request: Request, node: Node) -> bytes:
        if node.status is not NodeStatus.DEPLOYING:
            return _text(request, 409, f"node is {node.status.label}, not deploying")
        domain = self.p.settings.domain
        api = self._api(node)
        episode = self.p.store.deploy_episode(node.system_id) or self.p.clock()
        dep = self.p.store.current_deployment(node.system_id)
        if dep is None:
            boot = self.p.cache.get("boot", DI_IMAGE)
            self.p.store.begin_deployment(
                node.system_id, episode, "preseed", "", boot.ref if boot else "", self.p.clock()
            )
        self.p.store.deployment_progress(
            node.system_id,
            "preseed",
            "Debian installer fetched its preseed",
            self.p.clock(),
            f"node@{getattr(request.getClientAddress(), 'host', '?')}",
        )
        body = self.p.preseeds.get_template("debian-installer.cfg.j2").render(
            hostname=node.hostname,
            domain=domain,
            fqdn=fqdn(node, domain),
            system_id=node.system_id,
            mirror_host=self.p.settings.debian_mirror,
            nameserver=urlsplit(self.p.http_base).hostname,
            http_base=self.p.http_base,
            api=api,
            token=node.token,
            ssh_keys=self.p.store.ssh_keys(node.owner) if node.owner else [],
            done_url=f"{api}/done?status=ok",
            seed_url=f"{api}/seed",
        )
        log.info("deploy {host}: Debian installer fetched its preseed", host=node.hostname)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return body.encode()

    # -- helpers ------------------------------------------------------------------------

    def _api(self, node: Node) -> str:
        return f"{self.p.http_base}/api/deploy/{node.system_id}"

    def _installed(self, node: Node) -> bool:
        dep = self.p.store.current_deployment(node.system_id)
        return dep is not None and dep.installed is not None

    def _render(self, template: str, **values) -> bytes:
        return self.p.templates.get_template(template).render(**values).encode()

    def _fail(self, node: Node, message: str, body: bytes, actor: str = "netboot") -> None:
        """FAILED_DEPLOYMENT with ``message``; the full log is kept with the deployment."""
        log.warn("deploy {host} failed: {message}", host=node.hostname, message=message)
        if self.p.store.current_deployment(node.system_id) is not None:
            self.p.store.deployment_finished(node.system_id, False, body, self.p.clock(), actor)
        # It may have moved on meanwhile (released, timed out): nothing to fail then.
        with contextlib.suppress(IllegalTransition):
            self.p.actions.deployment_done(node.system_id, actor, False, message[:1000])


def _tarball(image: ImageVersion) -> str:
    for f in image.manifest.files:
        if f.name.endswith((".tar.zst", ".tar.gz", ".tar")):
            return f.name
    raise DeployConfigError(f"{image.ref} has no root filesystem tarball")


def _bearer_ok(request: Request, node: Node) -> bool:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and _same(token.strip(), node.token)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _query(request: Request, name: str) -> str | None:
    uri = request.uri.decode("latin-1")
    _, _, query = uri.partition("?")
    values = parse_qs(query).get(name)
    return values[0] if values else None


def _last_error(log_bytes: bytes) -> str:
    """The installer's ``error:`` line, else its last line: the FAILED_DEPLOYMENT reason."""
    lines = [ln for ln in log_bytes.decode("utf-8", "replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:500]
    return lines[-1][:500] if lines else "(no log)"


def _ipxe_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9 .,:/()'_+-]", "_", text)[:200]


__all__ = ["DeployResource", "json_response"]
