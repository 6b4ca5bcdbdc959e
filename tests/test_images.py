"""Image references."""

import pytest

from workers.domain.images import ImageError, check_image, repository, short_name

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments"


@pytest.mark.parametrize(
    "image",
    [
        f"{ECR}:v42",
        "nginx:1.27",
        "ghcr.io/acme/pay-ments:2024.11.1",
        "localhost:5000/a/b:c",
        f"{ECR}@sha256:" + "a" * 64,
        f"{ECR}:v1@sha256:" + "0" * 64,
    ],
)
def test_accepts_pinned_references(image: str) -> None:
    assert check_image(image) == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "payments",
        f"{ECR}",
        "UPPER/case:v1",
        "a b:c",
        "x:",
        ":v1",
        "a//b:c",
        "a:b:c:d",
        "x" * 300 + ":v1",
        "$(rm -rf /):v1",
    ],
)
def test_refuses_malformed_or_unpinned(image: str) -> None:
    with pytest.raises(ImageError):
        check_image(image)


def test_repository_and_short_name() -> None:
    assert repository(f"{ECR}:v42") == ECR
    assert short_name(f"{ECR}:v42") == "payments:v42"
    assert short_name(f"{ECR}@sha256:" + "ab" * 32) == "payments@abababababab"
