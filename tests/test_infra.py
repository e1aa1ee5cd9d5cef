"""`python -m infra` against moto's server on 127.0.0.1: real boto3 over HTTP,
no AWS account and no hand-written fakes.

moto keeps its state per process (not per server), so every test uses its
own deployment name.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import subprocess
import sys
import tarfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from infra import __main__ as cli
from infra import render
from infra.plan import WORKER_POLICIES, Names

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
AMI_PARAMETER = "/perfrnn-test/dlami/ami-id"  # moto refuses to write under /aws/
PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("created", "updated", "unchanged", "deleted", "absent", "skipped")


@pytest.fixture(scope="module")
def endpoint():
    """moto's server on a free port of 127.0.0.1, with dummy credentials in the
    environment; stopped when the module's tests are done."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        werkzeug = logging.getLogger("werkzeug")
        level = werkzeug.level
        werkzeug.setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def client(endpoint):
    made = {}

    def get(service: str):
        if service not in made:
            made[service] = boto3.client(service, region_name=REGION, endpoint_url=endpoint)
        return made[service]

    return get


@pytest.fixture(scope="module")
def ami(client):
    """The AMI id the deployment should use, published the way AWS publishes
    the Deep Learning AMI: in an SSM parameter (test setup, like a fixture)."""
    image = client("ec2").describe_images(Owners=["amazon"])["Images"][0]
    client("ssm").put_parameter(Name=AMI_PARAMETER, Value=image["ImageId"], Type="String",
                                Overwrite=True)
    return image


def make_project(root: Path, bundle: bytes = b"tiny bundle " * 100) -> Path:
    """A small stand-in for the project: a few sources, a tiny bundle, and
    things that must not be shipped."""
    files = {
        "webapp/setup.sh": "#!/usr/bin/env bash\necho setup\n",
        "webapp/__init__.py": "",
        "webapp/jobs/worker.py": "print('worker')\n",
        "perfrnn/__init__.py": "",
        "requirements.txt": "tensorflow-cpu==2.21.0\n",
        "bundles/README.md": "# styles\n",
        ".venv/lib/site.py": "not shipped\n",
        "perfrnn/__pycache__/x.cpython-311.pyc": "not shipped\n",
        "instance/perfrnn.sqlite3": "not shipped\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "bundles" / "tiny.mag").write_bytes(bundle)
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def outcomes(stdout: str) -> dict[str, str]:
    """{"kind name": outcome} from the lines `up` and `down` print."""
    found = {}
    for line in stdout.splitlines():
        outcome = line[:10].strip()
        if outcome in OUTCOMES:
            kind, name = line[11:33].strip(), line[34:].split("  (")[0].strip()
            found[f"{kind} {name}"] = outcome
    return found


def up_argv(endpoint: str, name: str, source: Path, *extra: str) -> list[str]:
    return ["up", "--region", REGION, "--name", name, "--endpoint-url", endpoint,
            "--source", str(source), "--ami-parameter", AMI_PARAMETER, *extra]


def record_clients(monkeypatch) -> list:
    """The infra.aws.Clients the command line makes, to read their calls."""
    made = []
    real = cli._clients

    def recording(args):
        made.append(real(args))
        return made[-1]

    monkeypatch.setattr(cli, "_clients", recording)
    return made


@pytest.fixture(scope="module")
def deployed(endpoint, client, ami, tmp_path_factory):
    """One `up` of deployment "alpha", shared by the checks below."""
    source = make_project(tmp_path_factory.mktemp("project"))
    names = Names("alpha")
    stdout = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, stdout
    try:
        code = cli.main(up_argv(endpoint, "alpha", source))
    finally:
        sys.stdout = sys_stdout
    assert code == 0, stdout.getvalue()
    sqs = client("sqs")
    urls = {queue: sqs.get_queue_url(QueueName=queue)["QueueUrl"] for queue in (
        names.generation_queue, names.generation_dlq, names.training_queue, names.training_dlq)}
    arns = {queue: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"] for queue, url in urls.items()}
    return {"names": names, "source": source, "stdout": stdout.getvalue(), "urls": urls,
            "arns": arns, "bucket": names.bucket(ACCOUNT, REGION), "ami": ami}


# ----- the command line ----------------------------------------------------------

def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "infra", "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("up", "down", "status"):
        assert command in result.stdout
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr


def test_up_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["up", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--region", "--name", "--dry-run", "--instance-type", "--max-workers",
                   "--max-receives", "--result-days", "--endpoint-url", "--ami-parameter",
                   "--spot", "--subnets", "--source"):
        assert option in text


def test_checkout_is_packaged_without_bundles_or_local_files():
    from infra import package

    files = package.source_files(PROJECT_ROOT)
    assert {"webapp/setup.sh", "perfrnn/__init__.py", "infra/user_data.sh",
            "infra/policies/worker-s3.json", "requirements.txt"} <= set(files)
    assert not [name for name in files if name.startswith("bundles/") and name.endswith(".mag")
                or name.endswith(".pyc")
                or name.split("/")[0] in (".venv", ".git", "instance", "corpora", "packs")]
    assert [path.name for path in package.bundle_files(PROJECT_ROOT)] == sorted(
        path.name for path in (PROJECT_ROOT / "bundles").glob("*.mag"))


# ----- up: every resource with its settings -----------------------------------------

def test_up_reports_every_resource_created(deployed):
    lines = outcomes(deployed["stdout"])
    names = deployed["names"]
    assert set(lines.values()) == {"created"}
    for expected in (f"s3 bucket {deployed['bucket']}", "s3 object deploy/perfrnn.tar.gz",
                     "s3 object bundles/tiny.mag", f"sqs queue {names.generation_queue}",
                     f"sqs queue {names.training_dlq}", f"iam role {names.role}",
                     f"iam instance profile {names.instance_profile}",
                     f"launch template {names.launch_template}",
                     f"autoscaling group {names.asg}", f"cloudwatch alarm {names.idle_alarm}"):
        assert expected in lines
    # The environment block for the web host, ready to paste.
    assert "JOB_BACKEND=sqs\nSTORAGE=s3\n" in deployed["stdout"]
    assert f"S3_BUCKET={deployed['bucket']}" in deployed["stdout"]
    assert (f"SQS_GENERATION_QUEUE_URL={deployed['urls'][names.generation_queue]}"
            in deployed["stdout"])
    assert f"SQS_TRAINING_QUEUE_URL={deployed['urls'][names.training_queue]}" in \
        deployed["stdout"]


def test_bucket_is_private_encrypted_and_expires_results(deployed, client):
    s3, bucket = client("s3"), deployed["bucket"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                     "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert [rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for rule in rules] == \
        ["AES256"]
    lifecycle = {rule["ID"]: rule for rule in
                 s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert lifecycle["expire-idle-checkpoints"]["Filter"] == {"Prefix": "checkpoints/"}
    assert lifecycle["expire-idle-checkpoints"]["Expiration"] == {"Days": 30}
    expire = lifecycle["expire-results"]
    assert expire["Status"] == "Enabled"
    assert expire["Filter"]["Prefix"] == "jobs/" and expire["Expiration"]["Days"] == 7
    assert lifecycle["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == \
        {"DaysAfterInitiation": 1}
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") in (None, "Suspended")


def test_source_and_bundles_are_uploaded(deployed, client):
    s3, bucket = client("s3"), deployed["bucket"]
    body = s3.get_object(Bucket=bucket, Key="deploy/perfrnn.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        shipped = set(tar.getnames())
    assert {"webapp/setup.sh", "webapp/jobs/worker.py", "perfrnn/__init__.py", "requirements.txt",
            "bundles/README.md"} <= shipped
    assert not [name for name in shipped if name.endswith(".mag") or ".venv" in name
                or "__pycache__" in name or name.startswith("instance/")]
    bundle = deployed["source"] / "bundles" / "tiny.mag"
    head = s3.head_object(Bucket=bucket, Key="bundles/tiny.mag")
    assert head["ContentLength"] == bundle.stat().st_size
    import hashlib

    assert head["Metadata"]["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert s3.get_object(Bucket=bucket, Key="bundles/tiny.mag")["Body"].read() == \
        bundle.read_bytes()


def test_queues_have_dead_letter_queues(deployed, client):
    sqs, names = client("sqs"), deployed["names"]
    for queue, dlq, visibility in ((names.generation_queue, names.generation_dlq, "300"),
                                   (names.training_queue, names.training_dlq, "900")):
        attributes = sqs.get_queue_attributes(QueueUrl=deployed["urls"][queue],
                                              AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == deployed["arns"][dlq]
        assert int(redrive["maxReceiveCount"]) == 3
        assert attributes["VisibilityTimeout"] == visibility
        assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
        dead = sqs.get_queue_attributes(QueueUrl=deployed["urls"][dlq],
                                        AttributeNames=["All"])["Attributes"]
        assert dead["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        assert "RedrivePolicy" not in dead


def _rendered_values(deployed) -> dict:
    names = deployed["names"]
    return render.policy_values("aws", deployed["bucket"],
                                deployed["arns"][names.generation_queue],
                                deployed["arns"][names.training_queue])


def test_worker_role_is_least_privilege(deployed, client):
    iam, names = client("iam"), deployed["names"]
    role = iam.get_role(RoleName=names.role)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert trust["Statement"][0]["Action"] == "sts:AssumeRole"
    values = _rendered_values(deployed)
    assert sorted(iam.list_role_policies(RoleName=names.role)["PolicyNames"]) == \
        sorted(WORKER_POLICIES)
    documents = []
    for policy_name, filename in WORKER_POLICIES.items():
        document = iam.get_role_policy(RoleName=names.role,
                                       PolicyName=policy_name)["PolicyDocument"]
        assert document == render.render_policy(filename, values)
        documents.append(document)
    web_arn = f"arn:aws:iam::{ACCOUNT}:policy/{names.web_policy}"
    web = iam.get_policy_version(PolicyArn=web_arn, VersionId=iam.get_policy(
        PolicyArn=web_arn)["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert web == render.render_policy("web.json", values)
    for document in [*documents, web, trust]:
        text = json.dumps(document)
        assert "${" not in text  # every placeholder filled
        for action in render.policy_actions(document):
            assert "*" not in action, action
        for statement in document["Statement"]:
            resources = statement.get("Resource", [])
            assert "*" not in ([resources] if isinstance(resources, str) else resources)
    worker_actions = {a for d in documents for a in render.policy_actions(d)}
    assert "sqs:SendMessage" not in worker_actions
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
            "s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= worker_actions
    sqs_resources = documents[0]["Statement"][0]["Resource"]
    assert sorted(sqs_resources) == sorted([deployed["arns"][names.generation_queue],
                                            deployed["arns"][names.training_queue]])
    # Objects only under the project's prefixes; code and shipped styles read-only.
    s3_statements = {s["Sid"]: s for s in documents[1]["Statement"]}
    bucket_arn = f"arn:aws:s3:::{deployed['bucket']}"
    written = s3_statements["WriteJobOutputs"]["Resource"]
    assert f"{bucket_arn}/jobs/*" in written and f"{bucket_arn}/status/*" in written
    assert f"{bucket_arn}/deploy/*" not in written and f"{bucket_arn}/bundles/*" not in written
    profile = iam.get_instance_profile(InstanceProfileName=names.instance_profile)
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [names.role]


def test_launch_template_runs_the_worker(deployed, client):
    ec2, iam, names = client("ec2"), client("iam"), deployed["names"]
    data = ec2.describe_launch_template_versions(
        LaunchTemplateName=names.launch_template,
        Versions=["$Default"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceType"] == "g5.xlarge"
    assert data["ImageId"] == deployed["ami"]["ImageId"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert "InstanceMarketOptions" not in data
    profile = iam.get_instance_profile(InstanceProfileName=names.instance_profile)
    assert data["IamInstanceProfile"]["Arn"] == profile["InstanceProfile"]["Arn"]
    (volume,) = data["BlockDeviceMappings"]
    assert volume["DeviceName"] == deployed["ami"]["RootDeviceName"]
    assert volume["Ebs"]["Encrypted"] is True
    assert volume["Ebs"]["VolumeSize"] == 100 and volume["Ebs"]["VolumeType"] == "gp3"
    group = ec2.describe_security_groups(GroupIds=data["SecurityGroupIds"])["SecurityGroups"][0]
    assert group["GroupName"] == names.security_group and group["IpPermissions"] == []
    script = base64.b64decode(data["UserData"]).decode()
    for text in (deployed["urls"][names.generation_queue],
                 deployed["urls"][names.training_queue], deployed["bucket"],
                 "python -m webapp.jobs.worker", "JOB_BACKEND=sqs", "STORAGE=s3",
                 "Restart=always", "perfrnn-worker.service", "bash \"$APP_DIR/webapp/setup.sh\"",
                 "deploy/perfrnn.tar.gz", f"REGION={REGION}"):
        assert text in script, text
    assert "{{" not in script
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_group_scales_on_queue_depth(deployed, client):
    ec2, autoscaling, names = client("ec2"), client("autoscaling"), deployed["names"]
    (group,) = autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[names.asg])["AutoScalingGroups"]
    assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (0, 0, 4)
    assert group["LaunchTemplate"]["LaunchTemplateName"] == names.launch_template
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    assert set(group["VPCZoneIdentifier"].split(",")) == \
        {subnet["SubnetId"] for subnet in subnets["Subnets"] if subnet["DefaultForAz"]}
    policies = {p["PolicyName"]: p for p in autoscaling.describe_policies(
        AutoScalingGroupName=names.asg)["ScalingPolicies"]}
    out, zero = policies[names.scale_out_policy], policies[names.scale_to_zero_policy]
    assert out["PolicyType"] == zero["PolicyType"] == "StepScaling"
    assert out["AdjustmentType"] == "ChangeInCapacity"
    assert zero["AdjustmentType"] == "ExactCapacity"
    assert [step["ScalingAdjustment"] for step in zero["StepAdjustments"]] == [0]
    alarms = {a["AlarmName"]: a for a in client("cloudwatch").describe_alarms(
        AlarmNames=[names.backlog_alarm, names.idle_alarm])["MetricAlarms"]}
    backlog, idle = alarms[names.backlog_alarm], alarms[names.idle_alarm]
    assert backlog["AlarmActions"] == [out["PolicyARN"]]
    assert idle["AlarmActions"] == [zero["PolicyARN"]]
    assert backlog["ComparisonOperator"] == "GreaterThanThreshold"
    assert backlog["Threshold"] == 0 and backlog["EvaluationPeriods"] == 1
    assert idle["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    assert idle["EvaluationPeriods"] == 15
    watched = {(query["MetricStat"]["Metric"]["MetricName"],
                query["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
               for query in backlog["Metrics"] if "MetricStat" in query}
    assert watched == {("ApproximateNumberOfMessagesVisible", names.generation_queue),
                       ("ApproximateNumberOfMessagesVisible", names.training_queue)}


# ----- up again: nothing to do -------------------------------------------------------

def test_up_again_changes_nothing(deployed, client, capsys, monkeypatch, endpoint):
    names = deployed["names"]
    template_before = client("ec2").describe_launch_templates(
        LaunchTemplateNames=[names.launch_template])["LaunchTemplates"][0]
    role_before = client("iam").get_role(RoleName=names.role)["Role"]["Arn"]
    made = record_clients(monkeypatch)
    code, out, _ = run(capsys, *up_argv(endpoint, "alpha", deployed["source"]))
    assert code == 0
    again = outcomes(out)
    assert again.keys() == outcomes(deployed["stdout"]).keys()
    assert set(again.values()) == {"unchanged"}
    (clients,) = made
    assert clients.mutating_calls() == []  # no create, put, update or upload at all
    template_after = client("ec2").describe_launch_templates(
        LaunchTemplateNames=[names.launch_template])["LaunchTemplates"][0]
    assert template_after["LaunchTemplateId"] == template_before["LaunchTemplateId"]
    assert template_after["LatestVersionNumber"] == template_before["LatestVersionNumber"]
    assert client("iam").get_role(RoleName=names.role)["Role"]["Arn"] == role_before
    assert f"SQS_GENERATION_QUEUE_URL={deployed['urls'][names.generation_queue]}" in out


# ----- status -------------------------------------------------------------------------

def test_status_shows_depths_and_dead_letters(deployed, client, capsys, endpoint):
    sqs, names, urls = client("sqs"), deployed["names"], deployed["urls"]
    for job in ("job-1", "job-2"):
        sqs.send_message(QueueUrl=urls[names.generation_queue],
                         MessageBody=json.dumps({"id": job, "kind": "generation"}))
    sqs.receive_message(QueueUrl=urls[names.generation_queue], MaxNumberOfMessages=1,
                        VisibilityTimeout=600)
    sqs.send_message(QueueUrl=urls[names.training_dlq],
                     MessageBody=json.dumps({"id": "dead-job-7", "kind": "training"}))
    code, out, _ = run(capsys, "status", "--region", REGION, "--name", "alpha",
                       "--endpoint-url", endpoint)
    assert code == 0, out
    assert f"{names.generation_queue}: 1 visible, 1 in flight" in out
    assert f"{names.training_queue}: 0 visible, 0 in flight" in out
    assert f"{names.training_dlq}: 1 dead letters" in out
    assert f"{names.generation_dlq}: 0 dead letters" in out
    assert "dead-job-7" in out
    assert f"autoscaling group {names.asg}: desired 0, in service 0" in out
    assert "MISSING" not in out
    # Peeking left the dead letter where it was.
    left = sqs.receive_message(QueueUrl=urls[names.training_dlq], MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["id"] for m in left.get("Messages", [])] == ["dead-job-7"]


def test_status_of_unknown_deployment_exits_2(endpoint, capsys):
    code, out, err = run(capsys, "status", "--region", REGION, "--name", "nobody-here",
                         "--endpoint-url", endpoint)
    assert code == 2
    assert err.startswith("error: no deployment named 'nobody-here' in eu-west-1")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ----- dry run ----------------------------------------------------------------------

def test_dry_run_calls_nothing(endpoint, client, capsys, monkeypatch, tmp_path):
    import botocore.client

    calls = []

    def refuse(self, operation, params):
        calls.append(operation)
        raise AssertionError(f"dry run called {operation}")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    source = make_project(tmp_path)
    code, out, err = run(capsys, "up", "--region", REGION, "--name", "dry",
                         "--endpoint-url", f"http://127.0.0.1:{port}", "--source", str(source),
                         "--max-workers", "3", "--spot", "--dry-run")
    assert code == 0, err
    assert calls == []
    names = Names("dry")
    for text in (names.bucket("<account-id>", REGION), "deploy/perfrnn.tar.gz",
                 "bundles/tiny.mag", names.generation_queue, names.generation_dlq,
                 names.training_queue, names.training_dlq, names.role, names.instance_profile,
                 names.launch_template, names.asg, names.scale_out_policy,
                 names.scale_to_zero_policy, names.backlog_alarm, names.idle_alarm,
                 "max 3", "g5.xlarge spot", "IMDSv2 required", "after 3 receives"):
        assert text in out, text
    monkeypatch.undo()
    # And nothing of it exists on the server.
    assert "QueueUrls" not in client("sqs").list_queues(QueueNamePrefix="perfrnn-dry")


# ----- updates, down, down again ---------------------------------------------------

def test_up_updates_what_differs_then_down_removes_everything(
        endpoint, client, ami, capsys, tmp_path):
    source = make_project(tmp_path)
    names = Names("beta")
    bucket = names.bucket(ACCOUNT, REGION)
    code, out, err = run(capsys, *up_argv(endpoint, "beta", source))
    assert code == 0, err

    (source / "bundles" / "tiny.mag").write_bytes(b"retrained " * 50)
    code, out, err = run(capsys, *up_argv(endpoint, "beta", source, "--max-workers", "2",
                                          "--max-receives", "5", "--spot"))
    assert code == 0, err
    changed = {key for key, outcome in outcomes(out).items() if outcome == "updated"}
    assert changed == {"s3 object bundles/tiny.mag", f"sqs queue {names.generation_queue}",
                       f"sqs queue {names.training_queue}",
                       f"launch template {names.launch_template}",
                       f"autoscaling group {names.asg}"}
    assert client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[names.asg])["AutoScalingGroups"][0]["MaxSize"] == 2
    url = client("sqs").get_queue_url(QueueName=names.training_queue)["QueueUrl"]
    redrive = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    assert int(json.loads(redrive)["maxReceiveCount"]) == 5
    data = client("ec2").describe_launch_template_versions(
        LaunchTemplateName=names.launch_template,
        Versions=["$Default"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceMarketOptions"]["MarketType"] == "spot"
    assert client("s3").get_object(Bucket=bucket, Key="bundles/tiny.mag")["Body"].read() == \
        b"retrained " * 50

    code, out, err = run(capsys, "down", "--region", REGION, "--name", "beta",
                         "--endpoint-url", endpoint, "--yes")
    assert code == 0, err
    removed = outcomes(out)
    assert set(removed.values()) == {"deleted"}
    assert len(removed) == 17
    _assert_gone(client, names, bucket)

    code, out, err = run(capsys, "down", "--region", REGION, "--name", "beta",
                         "--endpoint-url", endpoint, "--yes")
    assert code == 0, err
    assert set(outcomes(out).values()) == {"absent"}


def _assert_gone(client, names: Names, bucket: str) -> None:
    from botocore.exceptions import ClientError

    assert "QueueUrls" not in client("sqs").list_queues(QueueNamePrefix=names.prefix)
    with pytest.raises(ClientError):
        client("s3").head_bucket(Bucket=bucket)
    iam = client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=names.role)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_instance_profile(InstanceProfileName=names.instance_profile)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/{names.web_policy}")
    ec2 = client("ec2")
    with pytest.raises(ClientError):
        ec2.describe_launch_templates(LaunchTemplateNames=[names.launch_template])
    assert ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [names.security_group]}])["SecurityGroups"] == []
    assert client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[names.asg])["AutoScalingGroups"] == []
    assert client("cloudwatch").describe_alarms(
        AlarmNames=[names.backlog_alarm, names.idle_alarm])["MetricAlarms"] == []


# ----- errors: one line, exit status 2 ------------------------------------------------

def test_errors_are_one_line(endpoint, capsys, monkeypatch, tmp_path):
    cases = [
        (["status", "--region", "mars-north-1", "--name", "alpha"], "unknown region"),
        (["status", "--region", REGION, "--name", "Bad_Name"], "invalid --name"),
        (up_argv(endpoint, "gamma", make_project(tmp_path / "project"), "--ami-parameter",
                 "/no/such"), "SSM parameter /no/such does not exist"),
        (up_argv(endpoint, "gamma", tmp_path), "does not look like the project"),
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    cases.append((["down", "--region", REGION, "--name", "alpha", "--endpoint-url", endpoint],
                  "pass --yes"))
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1
    # A wrong option is caught before anything is made.
    assert Names("gamma").bucket(ACCOUNT, REGION) not in {
        bucket["Name"] for bucket in boto3.client(
            "s3", region_name=REGION, endpoint_url=endpoint).list_buckets()["Buckets"]}


def test_missing_credentials_exit_2_without_traceback(endpoint):
    env = {key: value for key, value in os.environ.items()
           if key not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    result = subprocess.run(
        [sys.executable, "-m", "infra", "status", "--region", REGION, "--name", "alpha",
         "--endpoint-url", endpoint], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no AWS credentials found")
    assert "Traceback" not in result.stderr


# ----- permissions, as far as moto's IAM simulation goes -------------------------------

@contextmanager
def iam_enforced(endpoint: str):
    """moto checks every request against the caller's IAM policies inside the
    block (its /moto-api/reset-auth switch), and stops checking after it."""
    def switch(count: str) -> None:
        urllib.request.urlopen(urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"}), timeout=10)

    switch("0")
    try:
        yield
    finally:
        switch("inf")


def _user_with_policies(client, endpoint: str, user: str, documents: dict) -> dict:
    iam = client("iam")
    iam.create_user(UserName=user)
    for policy_name, document in documents.items():
        iam.put_user_policy(UserName=user, PolicyName=policy_name,
                            PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=user)["AccessKey"]

    def make(service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                            aws_access_key_id=key["AccessKeyId"],
                            aws_secret_access_key=key["SecretAccessKey"])

    return {"client": make, "key": key}


def _allowed(call) -> bool:
    from botocore.exceptions import ClientError

    try:
        call()
        return True
    except ClientError as error:
        assert aws_error_code(error) in ("AccessDenied", "403"), error
        return False


def aws_error_code(error) -> str:
    return error.response.get("Error", {}).get("Code", "")


def test_worker_and_web_policies_allow_only_their_jobs(deployed, client, endpoint):
    """The rendered policies, given to IAM users, under moto's IAM checks
    (which ignore Conditions such as ListBucket's s3:prefix)."""
    names, values = deployed["names"], _rendered_values(deployed)
    bucket, urls = deployed["bucket"], deployed["urls"]
    generation = urls[names.generation_queue]
    worker = _user_with_policies(client, endpoint, "alpha-worker-check", {
        name: render.render_policy(file, values) for name, file in WORKER_POLICIES.items()})
    web = _user_with_policies(client, endpoint, "alpha-web-check",
                              {"web": render.render_policy("web.json", values)})
    with iam_enforced(endpoint):
        s3, sqs = worker["client"]("s3"), worker["client"]("sqs")
        assert _allowed(lambda: s3.put_object(Bucket=bucket, Key="jobs/j1/a.mid", Body=b"1"))
        assert _allowed(lambda: s3.put_object(Bucket=bucket, Key="status/j1.json", Body=b"{}"))
        assert _allowed(lambda: s3.get_object(Bucket=bucket, Key="deploy/perfrnn.tar.gz"))
        assert _allowed(lambda: s3.get_object(Bucket=bucket, Key="bundles/tiny.mag"))
        assert not _allowed(lambda: s3.put_object(Bucket=bucket, Key="deploy/perfrnn.tar.gz",
                                                  Body=b"evil"))
        assert not _allowed(lambda: s3.put_object(Bucket=bucket, Key="bundles/tiny.mag",
                                                  Body=b"evil"))
        assert not _allowed(lambda: s3.put_object(Bucket=bucket, Key="elsewhere", Body=b"1"))
        assert not _allowed(lambda: s3.delete_object(Bucket=bucket, Key="jobs/j1/a.mid"))
        assert _allowed(lambda: sqs.receive_message(QueueUrl=generation, WaitTimeSeconds=0))
        assert not _allowed(lambda: sqs.send_message(QueueUrl=generation, MessageBody="x"))
        assert not _allowed(lambda: sqs.receive_message(
            QueueUrl=urls[names.generation_dlq], WaitTimeSeconds=0))

        s3, sqs = web["client"]("s3"), web["client"]("sqs")
        assert _allowed(lambda: sqs.send_message(QueueUrl=generation, MessageBody="{}"))
        assert not _allowed(lambda: sqs.receive_message(QueueUrl=generation, WaitTimeSeconds=0))
        assert _allowed(lambda: s3.put_object(Bucket=bucket, Key="uploads/u1/a.mid", Body=b"1"))
        assert _allowed(lambda: s3.delete_object(Bucket=bucket, Key="jobs/j1/a.mid"))
        assert not _allowed(lambda: s3.put_object(Bucket=bucket, Key="jobs/j2/a.mid",
                                                  Body=b"1"))
        assert not _allowed(lambda: s3.get_object(Bucket=bucket, Key="deploy/perfrnn.tar.gz"))
    client("sqs").purge_queue(QueueUrl=generation)


def test_access_denied_is_one_line(deployed, client, endpoint, monkeypatch, capsys):
    nobody = _user_with_policies(client, endpoint, "alpha-nobody", {})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", nobody["key"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", nobody["key"]["SecretAccessKey"])
    with iam_enforced(endpoint):
        code, _, err = run(capsys, "status", "--region", REGION, "--name", "alpha",
                           "--endpoint-url", endpoint)
    assert code == 2
    assert err.startswith("error: access denied to ")
    assert len(err.strip().splitlines()) == 1 and "<" not in err
