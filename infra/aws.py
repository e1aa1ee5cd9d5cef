"""Create, update, describe and delete each kind of AWS resource.

Every `ensure_*` function looks the resource up by name first, creates it
only when it is missing, updates what differs where that is cheap, and
reports one line: created, updated or unchanged. Every `delete_*` function
tolerates a resource that is already gone. The order they are called in
lives in `infra.commands`.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from botocore.exceptions import ClientError

# How long `down` waits for instances to go before removing what they use.
WAIT_SECONDS = 900
POLL_SECONDS = 10

SERVICES = ("sts", "s3", "sqs", "iam", "ec2", "ssm", "autoscaling", "cloudwatch")


class InfraError(Exception):
    """A problem to tell the user in one line (exit status 2)."""


class Report:
    """Prints one line per resource and keeps (outcome, kind, name) for tests."""

    def __init__(self, echo: bool = True):
        self.entries: list[tuple[str, str, str]] = []
        self.echo = echo

    def add(self, outcome: str, kind: str, name: str, detail: str = "") -> None:
        self.entries.append((outcome, kind, name))
        if self.echo:
            line = f"{outcome:<10} {kind:<22} {name}"
            print(f"{line}  ({detail})" if detail else line, flush=True)

    def outcomes(self) -> dict[str, str]:
        return {f"{kind} {name}": outcome for outcome, kind, name in self.entries}


class Clients:
    """boto3 clients of one region (and optional endpoint, e.g. moto's), made
    on first use. `calls` lists every API operation sent ("sqs.CreateQueue")."""

    def __init__(self, region: str, endpoint_url: str | None = None,
                 profile: str | None = None):
        import boto3
        from botocore.config import Config

        self.region = region
        self.endpoint_url = endpoint_url
        self.session = boto3.session.Session(profile_name=profile, region_name=region)
        self.calls: list[str] = []
        self.session.events.register("before-call", self._record)
        self._config = Config(retries={"max_attempts": 5, "mode": "standard"},
                              connect_timeout=10, read_timeout=70)
        self._clients: dict = {}

    def _record(self, model, **_) -> None:
        self.calls.append(f"{model.service_model.service_name}.{model.name}")

    def __getattr__(self, service: str):
        if service not in SERVICES:
            raise AttributeError(service)
        if service not in self._clients:
            config = self._config
            if service == "s3" and self.endpoint_url:
                from botocore.config import Config

                config = config.merge(Config(s3={"addressing_style": "path"}))
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, config=config)
        return self._clients[service]

    def mutating_calls(self) -> list[str]:
        """Calls that change something (not Get/Describe/List/Head/Receive)."""
        reads = ("Get", "Describe", "List", "Head", "Receive")
        return [call for call in self.calls if not call.split(".", 1)[1].startswith(reads)]


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def is_missing(error: ClientError, *codes: str) -> bool:
    return error_code(error) in codes


def account_id(c: Clients) -> str:
    return c.sts.get_caller_identity()["Account"]


# ----- comparing what exists with what is wanted ---------------------------------

def covers(have, want) -> bool:
    """True when `have` holds everything of `want` (extra keys in dicts are fine;
    lists must match item by item; numbers compare by value)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(covers(have.get(key), value)
                                              for key, value in want.items())
    if isinstance(want, list | tuple):
        return (isinstance(have, list | tuple) and len(have) == len(want)
                and all(covers(h, w) for h, w in zip(have, want)))
    if isinstance(want, bool) or isinstance(have, bool):
        return have == want
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(have) == float(want)
    return have == want


def normalize_policy(document) -> object:
    """A policy document in a form where equal meanings compare equal: a
    one-item list is its item and other lists (but Statement) are sorted."""
    if isinstance(document, str):
        document = json.loads(urllib.parse.unquote(document))

    def norm(value, key=None):
        if isinstance(value, dict):
            return {k: norm(v, k) for k, v in value.items()}
        if isinstance(value, list):
            items = [norm(item) for item in value]
            if key == "Statement":
                return items
            if len(items) == 1:
                return items[0]
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        return value

    return norm(document)


# ----- S3 -------------------------------------------------------------------------

PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                       "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def bucket_exists(c: Clients, bucket: str) -> bool:
    try:
        c.s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as error:
        if is_missing(error, "404", "NoSuchBucket", "NotFound"):
            return False
        if is_missing(error, "403", "AccessDenied", "Forbidden"):
            raise InfraError(f"bucket {bucket} exists but this account cannot use it "
                             "(owned by another account, or access denied)") from None
        raise


def _lifecycle_form(rules: list[dict]) -> set[tuple]:
    found = set()
    for rule in rules:
        prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
        found.add((rule.get("ID"), rule.get("Status"), prefix or "",
                   rule.get("Expiration", {}).get("Days"),
                   rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")))
    return found


def ensure_bucket(c: Clients, report: Report, bucket: str, lifecycle: list[dict],
                  tags: dict[str, str]) -> None:
    """A private, encrypted, unversioned bucket whose results expire."""
    created = not bucket_exists(c, bucket)
    if created:
        arguments = {"Bucket": bucket}
        if c.region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": c.region}
        c.s3.create_bucket(**arguments)
        c.s3.put_bucket_tagging(Bucket=bucket, Tagging={
            "TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    changed = []
    try:
        block = c.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as error:
        if not is_missing(error, "NoSuchPublicAccessBlockConfiguration"):
            raise
        block = {}
    if not covers(block, PUBLIC_ACCESS_BLOCK):
        c.s3.put_public_access_block(Bucket=bucket,
                                     PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
        changed.append("public access block")
    try:
        rules = c.s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as error:
        if not is_missing(error, "ServerSideEncryptionConfigurationNotFoundError"):
            raise
        rules = []
    algorithms = [rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                  for rule in rules]
    if algorithms != ["AES256"]:
        c.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        changed.append("encryption")
    try:
        current = c.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as error:
        if not is_missing(error, "NoSuchLifecycleConfiguration"):
            raise
        current = []
    if _lifecycle_form(current) != _lifecycle_form(lifecycle):
        c.s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                                LifecycleConfiguration={"Rules": lifecycle})
        changed.append("lifecycle")
    if c.s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
        c.s3.put_bucket_versioning(Bucket=bucket,
                                   VersioningConfiguration={"Status": "Suspended"})
        changed.append("versioning suspended")
    outcome = "created" if created else "updated" if changed else "unchanged"
    report.add(outcome, "s3 bucket", bucket, "" if created else ", ".join(changed))


def ensure_object(c: Clients, report: Report, bucket: str, key: str, sha256: str,
                  data: bytes | None = None, path: Path | None = None) -> None:
    """Uploads `data` (or the file at `path`) unless the object has the same
    size and sha256 (kept in the object's metadata)."""
    size = len(data) if data is not None else Path(path).stat().st_size
    try:
        head = c.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not is_missing(error, "404", "NoSuchKey", "NotFound"):
            raise
        head = None
    if head and head.get("ContentLength") == size and \
            head.get("Metadata", {}).get("sha256") == sha256:
        report.add("unchanged", "s3 object", key, f"{size / 1e6:.1f} MB")
        return
    if data is not None:
        c.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={"sha256": sha256})
    else:
        c.s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": sha256}})
    report.add("created" if head is None else "updated", "s3 object", key,
               f"{size / 1e6:.1f} MB")


def delete_bucket(c: Clients, report: Report, bucket: str) -> None:
    """Deletes every object (and version, and unfinished upload), then the bucket."""
    try:
        if not bucket_exists(c, bucket):
            report.add("absent", "s3 bucket", bucket)
            return
    except InfraError:
        report.add("skipped", "s3 bucket", bucket, "not this account's")
        return
    count = 0
    for page in c.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            c.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            count += len(keys)
    for page in c.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        entries = [{"Key": item["Key"], "VersionId": item["VersionId"]}
                   for item in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if entries:
            c.s3.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})
    for page in c.s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            c.s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                        UploadId=upload["UploadId"])
    c.s3.delete_bucket(Bucket=bucket)
    report.add("deleted", "s3 bucket", bucket, f"with {count} objects")


# ----- SQS ------------------------------------------------------------------------

MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                 "NonExistentQueue")


def queue_url(c: Clients, name: str) -> str | None:
    try:
        return c.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        if is_missing(error, *MISSING_QUEUE):
            return None
        raise


def _same_attribute(key: str, have, want: str) -> bool:
    if key == "RedrivePolicy":
        if not have:
            return False
        return ({k: str(v) for k, v in json.loads(have).items()}
                == {k: str(v) for k, v in json.loads(want).items()})
    return str(have) == str(want)


def ensure_queue(c: Clients, report: Report, name: str, attributes: dict[str, str],
                 tags: dict[str, str]) -> tuple[str, str]:
    """The queue's (url, arn), created or brought to `attributes`."""
    url = queue_url(c, name)
    if url is None:
        try:
            url = c.sqs.create_queue(QueueName=name, Attributes=attributes,
                                     tags=tags)["QueueUrl"]
        except ClientError as error:
            if is_missing(error, "AWS.SimpleQueueService.QueueDeletedRecently",
                          "QueueDeletedRecently"):
                raise InfraError(f"queue {name} was deleted less than 60 s ago; AWS needs a "
                                 "minute before the name can be used again: retry then") from None
            raise
        outcome, detail = "created", ""
    else:
        current = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        different = {key: value for key, value in attributes.items()
                     if not _same_attribute(key, current.get(key), value)}
        if different:
            c.sqs.set_queue_attributes(QueueUrl=url, Attributes=different)
        outcome = "updated" if different else "unchanged"
        detail = ", ".join(sorted(different))
    arn = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    report.add(outcome, "sqs queue", name, detail)
    return url, arn


def queue_depths(c: Clients, url: str) -> dict[str, int]:
    attributes = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return {"visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))}


def peek_job_ids(c: Clients, url: str, limit: int = 5) -> list[str]:
    """Job ids of a few messages, left in the queue (received with a
    visibility timeout of 0, so they stay visible)."""
    messages = c.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit),
                                     VisibilityTimeout=0, WaitTimeSeconds=0).get("Messages", [])
    ids = []
    for message in messages[:limit]:
        body = message.get("Body", "")
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        job_id = (parsed.get("id") or parsed.get("job_id")) if isinstance(parsed, dict) else None
        ids.append(str(job_id) if job_id else f"(no job id: {body[:40]!r})")
    return ids


def delete_queue(c: Clients, report: Report, name: str) -> None:
    url = queue_url(c, name)
    if url is None:
        report.add("absent", "sqs queue", name)
        return
    c.sqs.delete_queue(QueueUrl=url)
    report.add("deleted", "sqs queue", name)


# ----- IAM ------------------------------------------------------------------------

def get_role(c: Clients, name: str) -> dict | None:
    try:
        return c.iam.get_role(RoleName=name)["Role"]
    except ClientError as error:
        if is_missing(error, "NoSuchEntity"):
            return None
        raise


def ensure_role(c: Clients, report: Report, name: str, trust: dict,
                tags: dict[str, str]) -> str:
    """The role's ARN, created or given `trust` as its trust policy."""
    role = get_role(c, name)
    if role is None:
        role = c.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
            Description="perfrnn GPU workers: read jobs from SQS, write results to S3",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["Role"]
        report.add("created", "iam role", name)
    elif normalize_policy(role["AssumeRolePolicyDocument"]) != normalize_policy(trust):
        c.iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        report.add("updated", "iam role", name, "trust policy")
    else:
        report.add("unchanged", "iam role", name)
    return role["Arn"]


def ensure_role_policy(c: Clients, report: Report, role: str, policy_name: str,
                       document: dict) -> None:
    try:
        current = c.iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    except ClientError as error:
        if not is_missing(error, "NoSuchEntity"):
            raise
        current = None
    if current is not None and normalize_policy(current) == normalize_policy(document):
        report.add("unchanged", "iam role policy", f"{role}/{policy_name}")
        return
    c.iam.put_role_policy(RoleName=role, PolicyName=policy_name,
                          PolicyDocument=json.dumps(document))
    report.add("created" if current is None else "updated", "iam role policy",
               f"{role}/{policy_name}")


def ensure_instance_profile(c: Clients, report: Report, name: str, role: str,
                            tags: dict[str, str]) -> str:
    """The instance profile's ARN, holding `role` (and nothing else)."""
    try:
        profile = c.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        outcome = "unchanged"
    except ClientError as error:
        if not is_missing(error, "NoSuchEntity"):
            raise
        profile = c.iam.create_instance_profile(
            InstanceProfileName=name,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()])["InstanceProfile"]
        outcome = "created"
    roles = [item["RoleName"] for item in profile.get("Roles", [])]
    for other in roles:
        if other != role:
            c.iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other)
    if role not in roles:
        c.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        if outcome == "unchanged":
            outcome = "updated"
    report.add(outcome, "iam instance profile", name)
    return profile["Arn"]


def managed_policy_arn(partition: str, account: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:policy/{name}"


def get_managed_policy(c: Clients, arn: str) -> dict | None:
    try:
        return c.iam.get_policy(PolicyArn=arn)["Policy"]
    except ClientError as error:
        if is_missing(error, "NoSuchEntity"):
            return None
        raise


def ensure_managed_policy(c: Clients, report: Report, arn: str, name: str, document: dict,
                          tags: dict[str, str]) -> None:
    """A customer managed policy (for the web host), its default version `document`."""
    policy = get_managed_policy(c, arn)
    if policy is None:
        c.iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document),
                            Description="perfrnn web host: send jobs to SQS, read results "
                                        "from S3 (attach it to the web host's role or user)",
                            Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        report.add("created", "iam policy", name)
        return
    current = c.iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])[
        "PolicyVersion"]["Document"]
    if normalize_policy(current) == normalize_policy(document):
        report.add("unchanged", "iam policy", name)
        return
    versions = c.iam.list_policy_versions(PolicyArn=arn)["Versions"]
    old = sorted((v for v in versions if not v["IsDefaultVersion"]),
                 key=lambda v: v["CreateDate"])
    if len(versions) >= 5 and old:  # AWS keeps at most five versions
        c.iam.delete_policy_version(PolicyArn=arn, VersionId=old[0]["VersionId"])
    c.iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document),
                                SetAsDefault=True)
    report.add("updated", "iam policy", name)


def delete_instance_profile(c: Clients, report: Report, name: str) -> None:
    try:
        profile = c.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if is_missing(error, "NoSuchEntity"):
            report.add("absent", "iam instance profile", name)
            return
        raise
    for role in profile.get("Roles", []):
        c.iam.remove_role_from_instance_profile(InstanceProfileName=name,
                                                RoleName=role["RoleName"])
    c.iam.delete_instance_profile(InstanceProfileName=name)
    report.add("deleted", "iam instance profile", name)


def delete_role(c: Clients, report: Report, name: str) -> None:
    """Deletes the role with its inline policies (and detaches managed ones)."""
    if get_role(c, name) is None:
        report.add("absent", "iam role", name)
        return
    for profile in c.iam.list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"]:
        c.iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    for policy in c.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        c.iam.delete_role_policy(RoleName=name, PolicyName=policy)
        report.add("deleted", "iam role policy", f"{name}/{policy}")
    for policy in c.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        c.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    c.iam.delete_role(RoleName=name)
    report.add("deleted", "iam role", name)


def delete_managed_policy(c: Clients, report: Report, arn: str, name: str) -> None:
    """Detaches the policy from whoever has it, then deletes all its versions."""
    if get_managed_policy(c, arn) is None:
        report.add("absent", "iam policy", name)
        return
    entities = c.iam.list_entities_for_policy(PolicyArn=arn)
    detached = []
    for role in entities.get("PolicyRoles", []):
        c.iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
        detached.append(f"role {role['RoleName']}")
    for user in entities.get("PolicyUsers", []):
        c.iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
        detached.append(f"user {user['UserName']}")
    for group in entities.get("PolicyGroups", []):
        c.iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
        detached.append(f"group {group['GroupName']}")
    for version in c.iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            c.iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    c.iam.delete_policy(PolicyArn=arn)
    report.add("deleted", "iam policy", name,
               "detached from " + ", ".join(detached) if detached else "")


# ----- EC2: network, AMI, launch template ----------------------------------------

def network(c: Clients, subnets: tuple[str, ...]) -> tuple[str, list[str]]:
    """(VPC id, subnet ids): the given subnets' VPC, or the default VPC's subnets."""
    if subnets:
        try:
            found = c.ec2.describe_subnets(SubnetIds=list(subnets))["Subnets"]
        except ClientError as error:
            if is_missing(error, "InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"):
                raise InfraError(f"--subnets: {error.response['Error'].get('Message')}") \
                    from None
            raise
        vpcs = {subnet["VpcId"] for subnet in found}
        if len(vpcs) != 1:
            raise InfraError(f"--subnets are in {len(vpcs)} VPCs ({', '.join(sorted(vpcs))}); "
                             "give subnets of one VPC")
        return vpcs.pop(), list(subnets)
    vpcs = c.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise InfraError(f"region {c.region} has no default VPC: pass --subnets "
                         "(subnets with a route to the internet)")
    vpc = vpcs[0]["VpcId"]
    found = c.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                            {"Name": "default-for-az", "Values": ["true"]}])
    ids = sorted(subnet["SubnetId"] for subnet in found["Subnets"])
    if not ids:
        raise InfraError(f"the default VPC {vpc} has no default subnets: pass --subnets")
    return vpc, ids


def find_security_group(c: Clients, name: str, vpc: str | None = None) -> str | None:
    filters = [{"Name": "group-name", "Values": [name]}]
    if vpc:
        filters.append({"Name": "vpc-id", "Values": [vpc]})
    groups = c.ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    return groups[0]["GroupId"] if groups else None


def ensure_security_group(c: Clients, report: Report, name: str, vpc: str,
                          tags: dict[str, str]) -> str:
    """A group with no inbound rules (workers only call out: S3, SQS, pip)."""
    group = find_security_group(c, name, vpc)
    if group:
        report.add("unchanged", "security group", name, group)
        return group
    group = c.ec2.create_security_group(
        GroupName=name, VpcId=vpc, Description="perfrnn GPU workers: no inbound access",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": k, "Value": v} for k, v in {**tags, "Name": name}.items()]}])["GroupId"]
    report.add("created", "security group", name, group)
    return group


def delete_security_group(c: Clients, report: Report, name: str) -> None:
    """Deletes every group of this name (they are ours: tagged), waiting while
    terminating instances still use it."""
    groups = c.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if not groups:
        report.add("absent", "security group", name)
        return
    for group in groups:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                c.ec2.delete_security_group(GroupId=group["GroupId"])
                break
            except ClientError as error:
                if is_missing(error, "InvalidGroup.NotFound"):
                    break
                if not is_missing(error, "DependencyViolation") or time.monotonic() > deadline:
                    raise
                time.sleep(POLL_SECONDS)
        report.add("deleted", "security group", name, group["GroupId"])


def ami_from_parameter(c: Clients, parameter: str) -> str:
    try:
        return c.ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as error:
        if is_missing(error, "ParameterNotFound"):
            raise InfraError(f"SSM parameter {parameter} does not exist in {c.region}: "
                             "check --ami-parameter and --region") from None
        raise


def root_device(c: Clients, ami: str) -> str:
    """The AMI's root device name ("/dev/sda1" on Ubuntu images)."""
    try:
        images = c.ec2.describe_images(ImageIds=[ami])["Images"]
    except ClientError as error:
        if is_missing(error, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed"):
            raise InfraError(f"AMI {ami} does not exist in {c.region}") from None
        raise
    return (images[0].get("RootDeviceName") if images else None) or "/dev/sda1"


# The launch template fields `up` sets; any other difference is left alone.
TEMPLATE_FIELDS = ("ImageId", "InstanceType", "IamInstanceProfile", "MetadataOptions",
                   "BlockDeviceMappings", "UserData", "SecurityGroupIds",
                   "InstanceMarketOptions", "TagSpecifications")


def template_data(ami: str, instance_type: str, profile_arn: str, device: str, volume_gb: int,
                  volume_type: str, user_data_b64: str, security_group: str, spot: bool,
                  tags: dict[str, str], name: str) -> dict:
    tag_list = [{"Key": k, "Value": v} for k, v in {**tags, "Name": name}.items()]
    data = {
        "ImageId": ami,
        "InstanceType": instance_type,
        "IamInstanceProfile": {"Arn": profile_arn},
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                            "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": device, "Ebs": {
            "VolumeSize": volume_gb, "VolumeType": volume_type, "Encrypted": True,
            "DeleteOnTermination": True}}],
        "UserData": user_data_b64,
        "SecurityGroupIds": [security_group],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tag_list},
                              {"ResourceType": "volume", "Tags": tag_list}],
    }
    if spot:
        data["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
            "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
    return data


# Tags the template gives to what it launches (moto 5.2 also lists the
# template's own "launch-template" tags among them, which AWS does not).
LAUNCHED_TAG_TYPES = ("instance", "volume")


def _launched_tags(specifications) -> dict[str, dict[str, str]]:
    return {spec["ResourceType"]: {tag["Key"]: tag["Value"] for tag in spec.get("Tags", [])}
            for spec in specifications or [] if spec.get("ResourceType") in LAUNCHED_TAG_TYPES}


def _same_template_field(key: str, have, want) -> bool:
    if key == "TagSpecifications":
        return _launched_tags(have) == _launched_tags(want)
    if want is None:
        return have is None
    return covers(have, want)


def _after_iam_propagation(call, attempts: int = 12):
    """`call()`, retried while EC2 does not see a just-made instance profile yet
    (IAM changes take a few seconds to reach other services)."""
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as error:
            message = error.response.get("Error", {}).get("Message", "")
            if (attempt == attempts - 1 or error_code(error) != "InvalidParameterValue"
                    or "iamInstanceProfile" not in message):
                raise
            time.sleep(POLL_SECONDS / 2)


def get_launch_template(c: Clients, name: str) -> dict | None:
    try:
        return c.ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"][0]
    except ClientError as error:
        if is_missing(error, "InvalidLaunchTemplateName.NotFoundException",
                      "InvalidLaunchTemplateId.NotFound"):
            return None
        raise


def default_template_data(c: Clients, name: str) -> dict:
    versions = c.ec2.describe_launch_template_versions(
        LaunchTemplateName=name, Versions=["$Default"])["LaunchTemplateVersions"]
    return versions[0]["LaunchTemplateData"] if versions else {}


def ensure_launch_template(c: Clients, report: Report, name: str, data: dict,
                           tags: dict[str, str]) -> str:
    """The template's id; a new default version when the wanted data differs."""
    template = get_launch_template(c, name)
    if template is None:
        template = _after_iam_propagation(lambda: c.ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData=data,
            VersionDescription="python -m infra up",
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": [
                {"Key": k, "Value": v} for k, v in tags.items()]}]))["LaunchTemplate"]
        report.add("created", "launch template", name, f"{data['InstanceType']}, "
                   f"{data['ImageId']}")
        return template["LaunchTemplateId"]
    current = default_template_data(c, name)
    different = [key for key in TEMPLATE_FIELDS if not _same_template_field(
        key, current.get(key), data.get(key))]
    if not different:
        report.add("unchanged", "launch template", name,
                   f"version {template['DefaultVersionNumber']}")
        return template["LaunchTemplateId"]
    version = _after_iam_propagation(lambda: c.ec2.create_launch_template_version(
        LaunchTemplateName=name, LaunchTemplateData=data,
        VersionDescription="python -m infra up"))["LaunchTemplateVersion"]["VersionNumber"]
    c.ec2.modify_launch_template(LaunchTemplateName=name, DefaultVersion=str(version))
    report.add("updated", "launch template", name,
               f"version {version}: {', '.join(different)}")
    return template["LaunchTemplateId"]


def delete_launch_template(c: Clients, report: Report, name: str) -> None:
    if get_launch_template(c, name) is None:
        report.add("absent", "launch template", name)
        return
    c.ec2.delete_launch_template(LaunchTemplateName=name)
    report.add("deleted", "launch template", name)


# ----- Auto Scaling and CloudWatch ------------------------------------------------

def get_group(c: Clients, name: str) -> dict | None:
    groups = c.autoscaling.describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def ensure_group(c: Clients, report: Report, name: str, template: str, subnets: list[str],
                 max_size: int, spot: bool, tags: dict[str, str]) -> None:
    """A group of 0 to `max_size` workers; an existing group keeps its current
    desired capacity (lowered to `max_size` if above it)."""
    wanted_template = {"LaunchTemplateName": template, "Version": "$Default"}
    group = get_group(c, name)
    if group is not None and group.get("Status"):
        raise InfraError(f"autoscaling group {name} is being deleted ({group['Status']}); "
                         "wait for `down` to finish, then run `up` again")
    if group is None:
        c.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate=wanted_template, MinSize=0,
            MaxSize=max_size, DesiredCapacity=0, VPCZoneIdentifier=",".join(subnets),
            HealthCheckGracePeriod=600, CapacityRebalance=spot,
            Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False,
                   "ResourceId": name, "ResourceType": "auto-scaling-group"}
                  for k, v in tags.items()])
        report.add("created", "autoscaling group", name,
                   f"min 0, max {max_size}, {len(subnets)} subnets")
        return
    changes = {}
    if group["MinSize"] != 0:
        changes["MinSize"] = 0
    if group["MaxSize"] != max_size:
        changes["MaxSize"] = max_size
        if group["DesiredCapacity"] > max_size:
            changes["DesiredCapacity"] = max_size
    current_template = group.get("LaunchTemplate") or {}
    if (current_template.get("LaunchTemplateName") != template
            or current_template.get("Version") != "$Default"):
        changes["LaunchTemplate"] = wanted_template
    current_subnets = {s for s in (group.get("VPCZoneIdentifier") or "").split(",") if s}
    if current_subnets != set(subnets):
        changes["VPCZoneIdentifier"] = ",".join(subnets)
    if bool(group.get("CapacityRebalance")) != spot:
        changes["CapacityRebalance"] = spot
    if changes:
        c.autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, **changes)
    report.add("updated" if changes else "unchanged", "autoscaling group", name,
               ", ".join(sorted(changes)) if changes else f"max {max_size}")


def ensure_scaling_policy(c: Clients, report: Report, group: str, name: str,
                          policy: dict) -> str:
    """The policy's ARN (put_scaling_policy only when it is missing or differs)."""
    found = c.autoscaling.describe_policies(AutoScalingGroupName=group,
                                            PolicyNames=[name])["ScalingPolicies"]
    if found and covers(found[0], policy):
        report.add("unchanged", "scaling policy", name)
        return found[0]["PolicyARN"]
    response = c.autoscaling.put_scaling_policy(AutoScalingGroupName=group, PolicyName=name,
                                                **policy)
    report.add("updated" if found else "created", "scaling policy", name)
    if response.get("PolicyARN"):
        return response["PolicyARN"]
    # moto 5.2 answers <PolicyArn> where AWS answers <PolicyARN>: read it back.
    return c.autoscaling.describe_policies(AutoScalingGroupName=group, PolicyNames=[name])[
        "ScalingPolicies"][0]["PolicyARN"]


def ensure_alarm(c: Clients, report: Report, name: str, alarm: dict, actions: list[str],
                 tags: dict[str, str]) -> None:
    wanted = {**alarm, "AlarmActions": actions, "ActionsEnabled": True}
    found = c.cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])[
        "MetricAlarms"]
    if found and covers(found[0], wanted):
        report.add("unchanged", "cloudwatch alarm", name, found[0].get("StateValue", ""))
        return
    c.cloudwatch.put_metric_alarm(AlarmName=name, **wanted,
                                  Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    report.add("updated" if found else "created", "cloudwatch alarm", name)


def delete_alarms(c: Clients, report: Report, names: list[str]) -> None:
    found = {alarm["AlarmName"] for alarm in c.cloudwatch.describe_alarms(
        AlarmNames=names)["MetricAlarms"]}
    if found:
        c.cloudwatch.delete_alarms(AlarmNames=sorted(found))
    for name in names:
        report.add("deleted" if name in found else "absent", "cloudwatch alarm", name)


def delete_group(c: Clients, report: Report, name: str, policies: list[str]) -> None:
    """Deletes the group's scaling policies, then the group with its instances
    (force delete), and waits until it is gone."""
    group = get_group(c, name)
    if group is None:
        for policy in policies:
            report.add("absent", "scaling policy", policy)
        report.add("absent", "autoscaling group", name)
        return
    existing = {policy["PolicyName"] for policy in c.autoscaling.describe_policies(
        AutoScalingGroupName=name)["ScalingPolicies"]}
    for policy in policies:
        if policy in existing:
            c.autoscaling.delete_policy(AutoScalingGroupName=name, PolicyName=policy)
        report.add("deleted" if policy in existing else "absent", "scaling policy", policy)
    instances = len(group.get("Instances", []))
    if not group.get("Status"):
        c.autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
    deadline = time.monotonic() + WAIT_SECONDS
    while get_group(c, name) is not None:
        if time.monotonic() > deadline:
            raise InfraError(f"autoscaling group {name} is still being deleted after "
                             f"{WAIT_SECONDS} s; run `down` again later")
        print(f"waiting for autoscaling group {name} to terminate its instances ...",
              flush=True)
        time.sleep(POLL_SECONDS)
    report.add("deleted", "autoscaling group", name, f"{instances} instances terminated")
