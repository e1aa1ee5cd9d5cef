"""Fills in the templates shipped in this package: the IAM policy documents
of `policies/` (placeholders like ${Bucket}) and the workers' boot script
`user_data.sh` (placeholders like {{BUCKET}})."""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE / "policies"
USER_DATA = HERE / "user_data.sh"

USER_DATA_FIELD = re.compile(r"\{\{([A-Z_]+)\}\}")


def policy_values(partition: str, bucket: str, generation_queue_arn: str,
                  training_queue_arn: str) -> dict[str, str]:
    """The placeholders every policy document may use."""
    return {"Partition": partition, "Bucket": bucket,
            "GenerationQueueArn": generation_queue_arn,
            "TrainingQueueArn": training_queue_arn}


def render_policy(filename: str, values: dict[str, str]) -> dict:
    """The policy document `policies/<filename>` with its placeholders filled.

    Raises:
      KeyError: the document uses a placeholder that `values` lacks.
    """
    text = (POLICY_DIR / filename).read_text()
    return json.loads(Template(text).substitute(values))


def policy_actions(document: dict) -> list[str]:
    """Every action a policy document names (for reviews and tests)."""
    found = []
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        found += [actions] if isinstance(actions, str) else list(actions)
    return found


def render_user_data(values: dict[str, str]) -> str:
    """The boot script with each {{FIELD}} replaced by its shell-quoted value.

    Raises:
      KeyError: the script uses a field that `values` lacks.
    """
    template = USER_DATA.read_text()
    return USER_DATA_FIELD.sub(lambda match: shlex.quote(str(values[match.group(1)])), template)


def encode_user_data(script: str) -> str:
    return base64.b64encode(script.encode()).decode()
