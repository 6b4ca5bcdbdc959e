"""Container image references: validation and the short names shown to people."""

from __future__ import annotations

import re

# registry[:port]/path[:tag][@sha256:digest], lower-case path components as Docker requires.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A first component is a registry only if it looks like a host: a dot, a port or localhost.
_HOST = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_REGISTRY = rf"(?:(?:{_HOST}(?:\.{_HOST})+|localhost)(?::[0-9]+)?/|{_HOST}:[0-9]+/)"
#: An image reference; `repo` is the repository, `tag` and `digest` what pins the version.
REFERENCE = re.compile(
    rf"^(?P<repo>{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


class ImageError(ValueError):
    """An image reference that cannot be deployed."""


def check_image(image: str) -> str:
    """Return `image` if it is a valid, pinned reference (a tag or a digest), else raise."""
    match = REFERENCE.match(image or "")
    if not match or len(image) > 255:
        raise ImageError(
            f'"{image}" is not an image reference, '
            "e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42"
        )
    if not match.group("tag") and not match.group("digest"):
        raise ImageError(f'"{image}" has no tag or digest: name the version, e.g. {image}:v42')
    return image


def repository(image: str) -> str:
    """The image without its tag or digest."""
    match = REFERENCE.match(image)
    return match.group("repo") if match else image.split("@")[0].rsplit(":", 1)[0]


def short_name(image: str) -> str:
    """What people call the image: the last path component with its tag ("payments:v42")."""
    last = image.rsplit("/", 1)[-1]
    if "@sha256:" in last:
        name, digest = last.split("@", 1)
        return f"{name}@{digest[7:19]}"
    return last
