"""One describer of errors for people (workers.aws.errors.describe_failure)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from workers.aws.errors import AwsStepError, describe_failure

REFUSED = ClientError(
    {"Error": {"Code": "BadRequestException", "Message": "weights must add up to 100"}},
    "UpdateRoute",
)


def test_an_aws_error_in_a_sentence_is_its_code_and_message() -> None:
    assert describe_failure(REFUSED) == "BadRequestException: weights must add up to 100"


def test_an_aws_error_on_its_own_names_the_operation() -> None:
    assert describe_failure(REFUSED, operation=True) == (
        "AWS refused UpdateRoute: BadRequestException: weights must add up to 100"
    )


def test_other_errors_are_their_own_text_or_their_type() -> None:
    assert describe_failure(AwsStepError("Route r not found."), operation=True) == (
        "Route r not found."
    )
    assert describe_failure(ValueError()) == "ValueError"
