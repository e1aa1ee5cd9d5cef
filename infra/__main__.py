"""Command line: `python -m infra up | down | status` (see --help)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra import plan

EPILOG = """\
examples:
  python -m infra up --region eu-west-1 --name demo --dry-run
  python -m infra up --region eu-west-1 --name demo --max-workers 2 --spot
  python -m infra status --region eu-west-1 --name demo
  python -m infra down --region eu-west-1 --name demo --yes

Credentials come from the usual AWS places (environment, ~/.aws, --profile).
Errors print one line and exit with status 2. The deploy guide is infra/README.md.
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _subnets(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra",
        description="Deploy the music generator's GPU workers on AWS: an S3 bucket, SQS "
                    "queues, an IAM role and an Auto Scaling group of EC2 GPU instances that "
                    "scales with the queues, down to zero when idle.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", default=os.environ.get("AWS_REGION")
                        or os.environ.get("AWS_DEFAULT_REGION"),
                        help="AWS region, e.g. eu-west-1 (default: $AWS_REGION or "
                             "$AWS_DEFAULT_REGION)")
    common.add_argument("--name", required=True,
                        help="deployment name: every resource is called perfrnn-NAME-... "
                             "(1-20 lowercase letters, digits, hyphens)")
    common.add_argument("--endpoint-url", help="send every AWS call to this URL (e.g. a "
                                               "local moto server) instead of AWS")
    common.add_argument("--profile", help="AWS profile of ~/.aws to use")

    up = commands.add_parser(
        "up", parents=[common], help="create or update the deployment (idempotent)",
        description="Create whatever of the deployment is missing and update what differs; "
                    "prints one line per resource (created / updated / unchanged), then the "
                    "settings for the web host.")
    up.add_argument("--dry-run", action="store_true",
                    help="print the plan (every resource and its key settings) and call "
                         "nothing on AWS")
    up.add_argument("--instance-type", default=plan.DEFAULT_INSTANCE_TYPE,
                    help="EC2 instance type of the workers (default %(default)s)")
    up.add_argument("--max-workers", type=_positive, default=4,
                    help="most worker instances at once (default %(default)s)")
    up.add_argument("--max-receives", type=_positive, default=3,
                    help="receives of a message before it goes to the dead-letter queue "
                         "(default %(default)s)")
    up.add_argument("--result-days", type=_positive, default=7,
                    help="days before results under jobs/ expire (default %(default)s)")
    up.add_argument("--ami-parameter", default=plan.DEFAULT_AMI_PARAMETER,
                    help="SSM parameter holding the AMI id (default: the Deep Learning Base "
                         "AMI, Ubuntu 22.04: %(default)s)")
    up.add_argument("--spot", action="store_true",
                    help="run workers as spot instances (cheaper; may be interrupted)")
    up.add_argument("--subnets", type=_subnets, default=(),
                    help="comma-separated subnet ids (default: the default VPC's subnets)")
    up.add_argument("--volume-size", type=_positive, default=plan.DEFAULT_VOLUME_GB,
                    help="root volume of a worker in GB (default %(default)s)")
    up.add_argument("--source", type=Path, default=plan.PROJECT_ROOT,
                    help="project folder to package for the workers (default: this checkout)")
    up.set_defaults(handler=_up)

    down = commands.add_parser(
        "down", parents=[common], help="delete everything `up` created",
        description="Delete the deployment: the Auto Scaling group and its instances, alarms, "
                    "scaling policies, launch template, security group, IAM role, instance "
                    "profile and policies, queues, and the bucket with all its objects "
                    "(results included). Pieces already gone are skipped.")
    down.add_argument("--yes", action="store_true",
                      help="do not ask for confirmation (needed when not on a terminal)")
    down.set_defaults(handler=_down)

    status = commands.add_parser(
        "status", parents=[common], help="queue depths, dead letters, workers, resources",
        description="Show each queue's waiting and in-flight messages, its dead-letter "
                    "queue's depth and latest job ids (peeked, not removed), the workers, and "
                    "whether each resource exists. Exit status 1 when some are missing.")
    status.set_defaults(handler=_status)
    return parser


def _settings(args) -> plan.Settings:
    return plan.Settings(
        name=args.name, region=args.region, instance_type=args.instance_type,
        max_workers=args.max_workers, max_receives=args.max_receives,
        result_days=args.result_days, ami_parameter=args.ami_parameter, spot=args.spot,
        subnets=args.subnets, volume_gb=args.volume_size, source=args.source.resolve())


def _clients(args):
    from infra.aws import Clients

    return Clients(args.region, endpoint_url=args.endpoint_url, profile=args.profile)


def _up(args) -> int:
    from infra import commands

    settings = _settings(args)
    if args.dry_run:
        commands.dry_run(settings)
        return 0
    commands.up(_clients(args), settings)
    return 0


def _down(args) -> int:
    from infra import commands
    from infra.aws import InfraError

    if not args.yes:
        if not sys.stdin.isatty():
            raise InfraError("down deletes the bucket with every result: pass --yes to confirm")
        answer = input(f"Delete deployment {args.name} in {args.region}, results included? "
                       "Type its name to confirm: ")
        if answer.strip() != args.name:
            print("nothing deleted")
            return 1
    commands.down(_clients(args), args.name)
    return 0


def _status(args) -> int:
    from infra import commands

    return commands.status(_clients(args), args.name)


def _known_regions() -> set[str]:
    import boto3

    session = boto3.session.Session()
    regions = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return regions


def _check(args) -> str | None:
    """Why the arguments cannot work, before any AWS call, or None."""
    problem = plan.check_name(args.name)
    if problem:
        return problem
    if not args.region:
        return "no region: pass --region (or set AWS_REGION)"
    if args.region not in _known_regions():
        return (f"unknown region {args.region!r} (e.g. eu-west-1, us-east-1; a region newer "
                "than this boto3 needs an upgrade)")
    if getattr(args, "source", None) is not None and not args.source.is_dir():
        return f"--source {args.source} is not a folder"
    return None


ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                 "UnauthorizedAccess", "AuthorizationError", "Forbidden", "403"}
BAD_CREDENTIALS = {"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
                   "ExpiredTokenException", "AuthFailure", "UnrecognizedClientException",
                   "InvalidAccessKeyId", "IncompleteSignature"}


def _one_line(message: str) -> str:
    """An error message without line breaks (or the XML some services answer with)."""
    if "<Message>" in message:
        message = message.split("<Message>", 1)[1].split("</Message>", 1)[0]
    elif message.lstrip().startswith("<"):
        message = ""
    message = " ".join(message.split())
    return message if len(message) <= 300 else message[:297] + "..."


def explain(error: BaseException) -> str | None:
    """One line for an error the user can fix, or None for anything else."""
    from botocore import exceptions

    from infra.aws import InfraError

    if isinstance(error, InfraError):
        return str(error)
    if isinstance(error, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return ("no AWS credentials found: set AWS_PROFILE (or --profile), or "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws configure`")
    if isinstance(error, exceptions.ProfileNotFound):
        return f"{error} (see ~/.aws/config)"
    if isinstance(error, exceptions.EndpointConnectionError):
        return (f"cannot reach {error.kwargs.get('endpoint_url')}: check --region, "
                "--endpoint-url and the network")
    if isinstance(error, exceptions.ClientError):
        details = error.response.get("Error", {})
        code, message = details.get("Code", "?"), _one_line(details.get("Message", ""))
        where = error.operation_name
        if code in ACCESS_DENIED:
            return (f"access denied to {where}: {message or code} (the credentials' IAM "
                    "permissions do not allow it; see infra/README.md)")
        if code in BAD_CREDENTIALS:
            return f"AWS rejected the credentials in {where} ({code}): {message}"
        return f"AWS error in {where}: {code}: {message}"
    if isinstance(error, exceptions.BotoCoreError):
        return f"AWS client error: {error}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every AWS or input problem becomes one line
        line = explain(error)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
