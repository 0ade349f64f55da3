"""Deployment artifacts: reproducible Lambda zips and the Cloud Run build context.

``hybridshop package`` calls ``build_all``; Terraform reads the zips (``source_code_hash``) and
Cloud Build builds the image from the context. Same inputs give the same bytes, so a re-run
changes nothing in AWS.
"""

from hybridshop.packaging.cloudrun import build_cloudrun_context
from hybridshop.packaging.lambda_zip import (
    BOOTSTRAP,
    LambdaTarget,
    PackagingError,
    build_lambda_zips,
    module_closure,
)

__all__ = [
    "BOOTSTRAP",
    "LambdaTarget",
    "PackagingError",
    "build_cloudrun_context",
    "build_lambda_zips",
    "module_closure",
]
