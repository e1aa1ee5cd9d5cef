"""What `python -m infra up` wants to exist, as plain data.

Nothing here talks to AWS: names are derived from the deployment name, and
every setting (queue attributes, scaling steps, alarm definitions, the launch
template's fixed parts) is spelled out so that `--dry-run` can print it and
`infra.aws` can compare it with what exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_AMI_PARAMETER = ("/aws/service/deeplearning/ami/x86_64/"
                         "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")
DEFAULT_INSTANCE_TYPE = "g5.xlarge"

# The deployment name goes into every resource name, including the bucket
# ("perfrnn-<name>-<account id>-<region>", at most 63 characters).
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?")

TAG_KEY = "perfrnn:deployment"

# Queues: seconds a received message stays hidden from other workers (the
# worker extends it while a job runs), long polling, and how long messages live.
GENERATION_VISIBILITY_SECONDS = 300
TRAINING_VISIBILITY_SECONDS = 900
RECEIVE_WAIT_SECONDS = 20
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600

# S3: incomplete multipart uploads are aborted after this many days.
ABORT_MULTIPART_DAYS = 1

# Workers: the root volume, and how long a new instance takes to be useful
# (boot, download, `webapp/setup.sh`) before step scaling counts it.
ROOT_VOLUME_TYPE = "gp3"
DEFAULT_VOLUME_GB = 100
INSTANCE_WARMUP_SECONDS = 600

# Scaling on queue depth. "Backlog" is the messages waiting in both queues;
# "work" adds the messages workers hold (in flight), so a long training run
# keeps its instance alive.
ALARM_PERIOD_SECONDS = 60
SCALE_OUT_MINUTES = 1
SCALE_TO_ZERO_MINUTES = 15
# (lower bound, upper bound or None, instances to add), bounds relative to
# the alarm's threshold of 0 waiting messages.
SCALE_OUT_STEPS = ((0.0, 10.0, 1), (10.0, None, 2))


@dataclass(frozen=True)
class Settings:
    """The options of `up` (and the name/region of `down` and `status`)."""

    name: str
    region: str
    instance_type: str = DEFAULT_INSTANCE_TYPE
    max_workers: int = 4
    max_receives: int = 3
    result_days: int = 7
    ami_parameter: str = DEFAULT_AMI_PARAMETER
    spot: bool = False
    subnets: tuple[str, ...] = ()
    volume_gb: int = DEFAULT_VOLUME_GB
    source: Path = field(default=PROJECT_ROOT)


def check_name(name: str) -> str | None:
    """Why `name` cannot name a deployment, or None when it can."""
    if not NAME_PATTERN.fullmatch(name or ""):
        return (f"invalid --name {name!r}: use 1-20 lowercase letters, digits and hyphens, "
                "starting and ending with a letter or digit")
    return None


def partition_for(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Names:
    """Every resource name of one deployment."""

    name: str

    @property
    def prefix(self) -> str:
        return f"perfrnn-{self.name}"

    def bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-{account}-{region}"

    @property
    def generation_queue(self) -> str:
        return f"{self.prefix}-generation"

    @property
    def generation_dlq(self) -> str:
        return f"{self.prefix}-generation-dlq"

    @property
    def training_queue(self) -> str:
        return f"{self.prefix}-training"

    @property
    def training_dlq(self) -> str:
        return f"{self.prefix}-training-dlq"

    @property
    def role(self) -> str:
        return f"{self.prefix}-worker"

    @property
    def instance_profile(self) -> str:
        return f"{self.prefix}-worker"

    @property
    def web_policy(self) -> str:
        return f"{self.prefix}-web"

    @property
    def security_group(self) -> str:
        return f"{self.prefix}-worker"

    @property
    def launch_template(self) -> str:
        return f"{self.prefix}-worker"

    @property
    def asg(self) -> str:
        return f"{self.prefix}-workers"

    @property
    def scale_out_policy(self) -> str:
        return f"{self.prefix}-scale-out"

    @property
    def scale_to_zero_policy(self) -> str:
        return f"{self.prefix}-scale-to-zero"

    @property
    def backlog_alarm(self) -> str:
        return f"{self.prefix}-backlog"

    @property
    def idle_alarm(self) -> str:
        return f"{self.prefix}-idle"

    def tags(self) -> dict[str, str]:
        return {TAG_KEY: self.name, "project": "perfrnn"}


# Objects in the bucket.
DEPLOY_KEY = "deploy/perfrnn.tar.gz"
BUNDLE_PREFIX = "bundles/"
JOBS_PREFIX = "jobs/"
# A training run's checkpoints, kept to resume a cancelled or interrupted run
# (webapp.jobs.runner.CheckpointSync); a run nobody resumes goes after this long.
CHECKPOINTS_PREFIX = "checkpoints/"
CHECKPOINT_DAYS = 30

# Inline policies of the worker role: name -> file in infra/policies/.
WORKER_POLICIES = {"worker-sqs": "worker-sqs.json", "worker-s3": "worker-s3.json"}
TRUST_POLICY = "trust-ec2.json"
WEB_POLICY = "web.json"


def queue_attributes(settings: Settings, kind: str, dlq_arn: str | None) -> dict[str, str]:
    """SQS attributes of a job queue (`kind` "generation" or "training"), or of
    its dead-letter queue when `dlq_arn` is None."""
    if dlq_arn is None:
        return {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
    visibility = (GENERATION_VISIBILITY_SECONDS if kind == "generation"
                  else TRAINING_VISIBILITY_SECONDS)
    return {
        "VisibilityTimeout": str(visibility),
        "ReceiveMessageWaitTimeSeconds": str(RECEIVE_WAIT_SECONDS),
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(settings.max_receives)}),
    }


def lifecycle_rules(settings: Settings) -> list[dict]:
    return [
        {"ID": "expire-results", "Status": "Enabled", "Filter": {"Prefix": JOBS_PREFIX},
         "Expiration": {"Days": settings.result_days}},
        {"ID": "expire-idle-checkpoints", "Status": "Enabled",
         "Filter": {"Prefix": CHECKPOINTS_PREFIX}, "Expiration": {"Days": CHECKPOINT_DAYS}},
        {"ID": "abort-incomplete-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}},
    ]


def scaling_policies(names: Names) -> dict[str, dict]:
    """put_scaling_policy arguments (less the group's name) by policy name."""
    steps = []
    for lower, upper, add in SCALE_OUT_STEPS:
        step = {"MetricIntervalLowerBound": lower, "ScalingAdjustment": add}
        if upper is not None:
            step["MetricIntervalUpperBound"] = upper
        steps.append(step)
    return {
        names.scale_out_policy: {
            "PolicyType": "StepScaling", "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Maximum",
            "EstimatedInstanceWarmup": INSTANCE_WARMUP_SECONDS, "StepAdjustments": steps},
        names.scale_to_zero_policy: {
            "PolicyType": "StepScaling", "AdjustmentType": "ExactCapacity",
            "MetricAggregationType": "Maximum",
            "StepAdjustments": [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": 0}]},
    }


def _queue_metric(metric_id: str, queue: str, metric: str) -> dict:
    return {"Id": metric_id, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": "AWS/SQS", "MetricName": metric,
                   "Dimensions": [{"Name": "QueueName", "Value": queue}]},
        "Period": ALARM_PERIOD_SECONDS, "Stat": "Maximum"}}


def alarms(names: Names) -> dict[str, tuple[str, dict]]:
    """put_metric_alarm arguments (less the name and actions) by alarm name,
    each with the scaling policy it triggers.

    Both alarms sum the two queues with metric math (FILL turns a queue that
    published nothing into 0), so one pair of alarms serves both kinds of job.
    """
    visible, hidden = "ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"
    gen, train = names.generation_queue, names.training_queue
    backlog = [_queue_metric("gv", gen, visible), _queue_metric("tv", train, visible),
               {"Id": "backlog", "Expression": "FILL(gv, 0) + FILL(tv, 0)",
                "Label": "messages waiting", "ReturnData": True}]
    work = [_queue_metric("gv", gen, visible), _queue_metric("tv", train, visible),
            _queue_metric("gh", gen, hidden), _queue_metric("th", train, hidden),
            {"Id": "work", "Expression": "FILL(gv, 0) + FILL(tv, 0) + FILL(gh, 0) + FILL(th, 0)",
             "Label": "messages waiting or in flight", "ReturnData": True}]
    return {
        names.backlog_alarm: (names.scale_out_policy, {
            "AlarmDescription": "Jobs are waiting in the generation or training queue: "
                                "add GPU workers.",
            "Metrics": backlog, "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.0, "EvaluationPeriods": SCALE_OUT_MINUTES,
            "DatapointsToAlarm": SCALE_OUT_MINUTES, "TreatMissingData": "notBreaching"}),
        names.idle_alarm: (names.scale_to_zero_policy, {
            "AlarmDescription": f"No job waiting or running for {SCALE_TO_ZERO_MINUTES} "
                                "minutes: scale the GPU workers to zero.",
            "Metrics": work, "ComparisonOperator": "LessThanOrEqualToThreshold",
            "Threshold": 0.0, "EvaluationPeriods": SCALE_TO_ZERO_MINUTES,
            "DatapointsToAlarm": SCALE_TO_ZERO_MINUTES,
            # An idle queue stops publishing metrics: no data means no work.
            "TreatMissingData": "breaching"}),
    }


@dataclass
class Resource:
    kind: str
    name: str
    settings: str = ""


def describe(settings: Settings, source_summary: list[tuple[str, str]] = (),
             account: str = "<account-id>") -> list[Resource]:
    """Every resource `up` manages, with its key settings, for --dry-run."""
    names = Names(settings.name)
    bucket = names.bucket(account, settings.region)
    resources = [Resource("s3 bucket", bucket,
                          "private (public access block all on), SSE-S3 AES256, versioning off, "
                          f"{JOBS_PREFIX} expires after {settings.result_days} d, "
                          f"{CHECKPOINTS_PREFIX} after {CHECKPOINT_DAYS} d, "
                          f"incomplete multipart uploads aborted after {ABORT_MULTIPART_DAYS} d")]
    resources += [Resource("s3 object", key, detail) for key, detail in source_summary]
    for kind, queue, dlq in (("generation", names.generation_queue, names.generation_dlq),
                             ("training", names.training_queue, names.training_dlq)):
        resources.append(Resource("sqs queue", dlq,
                                  f"dead letters of {queue}, retention 14 d"))
        visibility = (GENERATION_VISIBILITY_SECONDS if kind == "generation"
                      else TRAINING_VISIBILITY_SECONDS)
        resources.append(Resource(
            "sqs queue", queue, f"visibility {visibility} s, long polling "
            f"{RECEIVE_WAIT_SECONDS} s, after {settings.max_receives} receives -> {dlq}"))
    resources += [
        Resource("iam role", names.role, f"trusted by ec2.amazonaws.com ({TRUST_POLICY})"),
        *[Resource("iam role policy", f"{names.role}/{policy}", f"infra/policies/{file}")
          for policy, file in WORKER_POLICIES.items()],
        Resource("iam instance profile", names.instance_profile, f"role {names.role}"),
        Resource("iam policy", names.web_policy,
                 f"for the web host to attach (infra/policies/{WEB_POLICY})"),
        Resource("security group", names.security_group,
                 "no inbound rules, all outbound; in "
                 + ("the subnets' VPC" if settings.subnets else "the default VPC")),
        Resource("launch template", names.launch_template,
                 f"{settings.instance_type}{' spot' if settings.spot else ''}, AMI from "
                 f"{settings.ami_parameter}, IMDSv2 required, {settings.volume_gb} GB encrypted "
                 f"{ROOT_VOLUME_TYPE} root, user data infra/user_data.sh"),
        Resource("autoscaling group", names.asg,
                 f"min 0, desired 0, max {settings.max_workers}, subnets "
                 + (",".join(settings.subnets) or "<default VPC's subnets>")),
    ]
    policies = scaling_policies(names)
    for policy_name, policy in policies.items():
        resources.append(Resource("scaling policy", policy_name, _steps_text(policy)))
    for alarm_name, (policy_name, alarm) in alarms(names).items():
        expression = alarm["Metrics"][-1]["Expression"]
        operator = {"GreaterThanThreshold": ">", "LessThanOrEqualToThreshold": "<="}[
            alarm["ComparisonOperator"]]
        resources.append(Resource(
            "cloudwatch alarm", alarm_name,
            f"{expression} {operator} 0 for {alarm['EvaluationPeriods']} min -> {policy_name}"))
    return resources


def _steps_text(policy: dict) -> str:
    if policy["AdjustmentType"] == "ExactCapacity":
        return "set capacity to 0"
    parts = []
    for step in policy["StepAdjustments"]:
        lower = int(step["MetricIntervalLowerBound"])
        upper = step.get("MetricIntervalUpperBound")
        span = f"{lower}-{int(upper)}" if upper is not None else f">{lower}"
        parts.append(f"+{step['ScalingAdjustment']} when {span} waiting")
    return ", ".join(parts)
