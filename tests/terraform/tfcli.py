"""Finding terraform and the offline hashicorp/aws provider mirror, and a CLI config using it.

CI (.ci/run) exports TF_PLUGIN_MIRROR after looking for the provider as
/work/shared/reference/terraform.md describes; without it, a few usual places are tried. When
either is missing the tests that need them skip with the reason in the summary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TERRAFORM = shutil.which("terraform")
_USUAL_MIRRORS = (
    "/opt/tf-plugins",
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
    str(Path.home() / ".terraform.d" / "plugins"),
    str(Path.home() / ".local" / "share" / "terraform" / "plugins"),
)
NO_MIRROR = (
    "no hashicorp/aws provider mirror found (set TF_PLUGIN_MIRROR to the folder holding "
    "registry.terraform.io/; .ci/run finds it with `find / -name 'terraform-provider-aws_*'`)"
)


def mirror_root() -> Path | None:
    """The folder holding registry.terraform.io/hashicorp/aws (TF_PLUGIN_MIRROR first)."""
    for base in (os.environ.get("TF_PLUGIN_MIRROR", ""), *_USUAL_MIRRORS):
        if base and (Path(base) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return Path(base)
    return None


def cli_env(workdir: Path, mirror: Path) -> dict[str, str]:
    """Environment for offline terraform runs: a CLI config that installs aws from the mirror."""
    config = workdir / "cli.tfrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n'
        '  direct {\n    exclude = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n'
    )
    return dict(
        os.environ, TF_CLI_CONFIG_FILE=str(config), TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1"
    )
