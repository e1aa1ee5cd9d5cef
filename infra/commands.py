"""`up`, `down` and `status`: the order in which resources are made, removed
and read, and what is printed around them."""

from __future__ import annotations

from dataclasses import dataclass

from infra import aws, package, plan, render
from infra.aws import Clients, InfraError, Report
from infra.plan import Names, Settings


@dataclass
class Deployment:
    """What `up` made (or found): enough for the web host's settings."""

    region: str
    bucket: str
    generation_queue_url: str
    training_queue_url: str

    def environment(self) -> str:
        return "\n".join([
            "JOB_BACKEND=sqs",
            "STORAGE=s3",
            f"S3_BUCKET={self.bucket}",
            f"SQS_GENERATION_QUEUE_URL={self.generation_queue_url}",
            f"SQS_TRAINING_QUEUE_URL={self.training_queue_url}",
            f"AWS_REGION={self.region}",
        ])


def dry_run(settings: Settings) -> list[plan.Resource]:
    """Prints the plan; touches nothing on AWS (no client is even made)."""
    resources = plan.describe(settings, package.summary(settings.source))
    print(f"plan for deployment {settings.name} in {settings.region} "
          "(dry run: nothing is created and AWS is not called)")
    for resource in resources:
        print(f"  {resource.kind:<22} {resource.name}")
        if resource.settings:
            print(f"  {'':<22}   {resource.settings}")
    return resources


def up(c: Clients, settings: Settings, report: Report | None = None) -> Deployment:
    """Creates what is missing, updates what differs, prints a line per resource."""
    report = report or Report()
    names = Names(settings.name)
    tags = names.tags()
    account = aws.account_id(c)
    partition = plan.partition_for(settings.region)
    bucket = names.bucket(account, settings.region)
    print(f"deployment {settings.name} in {settings.region} (account {account})", flush=True)
    # What can fail on a wrong option comes before anything is made.
    files = package.source_files(settings.source)
    if "webapp/setup.sh" not in files:
        raise InfraError(f"{settings.source} does not look like the project (no "
                         "webapp/setup.sh): check --source")
    tarball = package.build_tarball(settings.source, files)
    ami = aws.ami_from_parameter(c, settings.ami_parameter)
    device = aws.root_device(c, ami)
    vpc, subnets = aws.network(c, settings.subnets)
    print(f"AMI {ami} from {settings.ami_parameter}; VPC {vpc}, subnets {', '.join(subnets)}",
          flush=True)

    # Storage, and the code and styles workers install from it.
    aws.ensure_bucket(c, report, bucket, plan.lifecycle_rules(settings), tags)
    aws.ensure_object(c, report, bucket, plan.DEPLOY_KEY, package.sha256_bytes(tarball),
                      data=tarball)
    for path in package.bundle_files(settings.source):
        aws.ensure_object(c, report, bucket, plan.BUNDLE_PREFIX + path.name,
                          package.sha256_file(path), path=path)

    # Queues: dead-letter queues first, their ARNs go into the redrive policies.
    urls, arns = {}, {}
    for kind, queue, dlq in (("generation", names.generation_queue, names.generation_dlq),
                             ("training", names.training_queue, names.training_dlq)):
        _, dlq_arn = aws.ensure_queue(c, report, dlq,
                                      plan.queue_attributes(settings, kind, None), tags)
        urls[kind], arns[kind] = aws.ensure_queue(
            c, report, queue, plan.queue_attributes(settings, kind, dlq_arn), tags)

    # Permissions: the workers' role, and a policy for the web host.
    values = render.policy_values(partition, bucket, arns["generation"], arns["training"])
    aws.ensure_role(c, report, names.role, render.render_policy(plan.TRUST_POLICY, values),
                    tags)
    for policy_name, filename in plan.WORKER_POLICIES.items():
        aws.ensure_role_policy(c, report, names.role, policy_name,
                               render.render_policy(filename, values))
    profile_arn = aws.ensure_instance_profile(c, report, names.instance_profile, names.role,
                                              tags)
    aws.ensure_managed_policy(c, report, aws.managed_policy_arn(partition, account,
                                                                names.web_policy),
                              names.web_policy, render.render_policy(plan.WEB_POLICY, values),
                              tags)

    # Workers: firewall, template, group.
    group_id = aws.ensure_security_group(c, report, names.security_group, vpc, tags)
    user_data = render.render_user_data({
        "DEPLOYMENT": settings.name, "REGION": settings.region, "BUCKET": bucket,
        "GENERATION_QUEUE_URL": urls["generation"], "TRAINING_QUEUE_URL": urls["training"]})
    data = aws.template_data(
        ami=ami, instance_type=settings.instance_type, profile_arn=profile_arn,
        device=device, volume_gb=settings.volume_gb,
        volume_type=plan.ROOT_VOLUME_TYPE, user_data_b64=render.encode_user_data(user_data),
        security_group=group_id, spot=settings.spot, tags=tags, name=names.launch_template)
    aws.ensure_launch_template(c, report, names.launch_template, data, tags)
    aws.ensure_group(c, report, names.asg, names.launch_template, subnets,
                     settings.max_workers, settings.spot, tags)

    # Scaling on queue depth.
    policy_arns = {name: aws.ensure_scaling_policy(c, report, names.asg, name, policy)
                   for name, policy in plan.scaling_policies(names).items()}
    for alarm_name, (policy_name, alarm) in plan.alarms(names).items():
        aws.ensure_alarm(c, report, alarm_name, alarm, [policy_arns[policy_name]], tags)

    deployment = Deployment(settings.region, bucket, urls["generation"], urls["training"])
    counts = {}
    for outcome, _, _ in report.entries:
        counts[outcome] = counts.get(outcome, 0) + 1
    print("done: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    print(f"\nWeb host settings (attach IAM policy {names.web_policy} to its role or user):\n")
    print(deployment.environment())
    return deployment


def down(c: Clients, name: str, report: Report | None = None) -> Report:
    """Deletes everything `up` made, users of a resource before the resource."""
    report = report or Report()
    names = Names(name)
    account = aws.account_id(c)
    partition = plan.partition_for(c.region)
    print(f"removing deployment {name} in {c.region} (account {account})", flush=True)
    aws.delete_alarms(c, report, [names.backlog_alarm, names.idle_alarm])
    aws.delete_group(c, report, names.asg, [names.scale_out_policy, names.scale_to_zero_policy])
    aws.delete_launch_template(c, report, names.launch_template)
    aws.delete_security_group(c, report, names.security_group)
    aws.delete_instance_profile(c, report, names.instance_profile)
    aws.delete_role(c, report, names.role)
    aws.delete_managed_policy(c, report, aws.managed_policy_arn(partition, account,
                                                                names.web_policy),
                              names.web_policy)
    for queue in (names.generation_queue, names.training_queue,
                  names.generation_dlq, names.training_dlq):
        aws.delete_queue(c, report, queue)
    aws.delete_bucket(c, report, names.bucket(account, c.region))
    removed = sum(1 for outcome, _, _ in report.entries if outcome == "deleted")
    print(f"done: {removed} removed, "
          f"{sum(1 for o, _, _ in report.entries if o == 'absent')} already absent")
    return report


def status(c: Clients, name: str) -> int:
    """Prints queue depths, dead letters, workers and which resources exist.
    Returns 0 when everything exists, 1 when some of it is missing.

    Raises:
      InfraError: nothing of this deployment exists in the region.
    """
    names = Names(name)
    account = aws.account_id(c)
    partition = plan.partition_for(c.region)
    bucket = names.bucket(account, c.region)
    exists: dict[str, bool] = {}

    queue_urls = {queue: aws.queue_url(c, queue) for queue in (
        names.generation_queue, names.generation_dlq, names.training_queue, names.training_dlq)}
    for queue, url in queue_urls.items():
        exists[f"sqs queue {queue}"] = url is not None
    exists[f"s3 bucket {bucket}"] = aws.bucket_exists(c, bucket)
    exists[f"iam role {names.role}"] = aws.get_role(c, names.role) is not None
    try:
        c.iam.get_instance_profile(InstanceProfileName=names.instance_profile)
        exists[f"iam instance profile {names.instance_profile}"] = True
    except aws.ClientError as error:
        if not aws.is_missing(error, "NoSuchEntity"):
            raise
        exists[f"iam instance profile {names.instance_profile}"] = False
    exists[f"iam policy {names.web_policy}"] = aws.get_managed_policy(
        c, aws.managed_policy_arn(partition, account, names.web_policy)) is not None
    exists[f"security group {names.security_group}"] = aws.find_security_group(
        c, names.security_group) is not None
    exists[f"launch template {names.launch_template}"] = aws.get_launch_template(
        c, names.launch_template) is not None
    group = aws.get_group(c, names.asg)
    exists[f"autoscaling group {names.asg}"] = group is not None
    policies = set()
    if group is not None:
        policies = {p["PolicyName"] for p in c.autoscaling.describe_policies(
            AutoScalingGroupName=names.asg)["ScalingPolicies"]}
    for policy in (names.scale_out_policy, names.scale_to_zero_policy):
        exists[f"scaling policy {policy}"] = policy in policies
    alarm_states = {alarm["AlarmName"]: alarm.get("StateValue", "?") for alarm in
                    c.cloudwatch.describe_alarms(
                        AlarmNames=[names.backlog_alarm, names.idle_alarm])["MetricAlarms"]}
    for alarm in (names.backlog_alarm, names.idle_alarm):
        exists[f"cloudwatch alarm {alarm}"] = alarm in alarm_states

    if not any(exists.values()):
        raise InfraError(f"no deployment named {name!r} in {c.region} (account {account}); "
                         f"create it with: python -m infra up --region {c.region} --name {name}")

    print(f"deployment {name} in {c.region} (account {account})")
    print("\nqueues:")
    for kind, queue, dlq in (("generation", names.generation_queue, names.generation_dlq),
                             ("training", names.training_queue, names.training_dlq)):
        url, dlq_url = queue_urls[queue], queue_urls[dlq]
        if url is None:
            print(f"  {kind:<10} {queue}: missing")
        else:
            depth = aws.queue_depths(c, url)
            print(f"  {kind:<10} {queue}: {depth['visible']} visible, "
                  f"{depth['in_flight']} in flight")
        if dlq_url is None:
            print(f"  {'':<10} {dlq}: missing")
            continue
        dead = aws.queue_depths(c, dlq_url)
        dead_count = dead["visible"] + dead["in_flight"]
        print(f"  {'':<10} {dlq}: {dead_count} dead letters")
        if dead["visible"]:
            print(f"  {'':<10}   latest job ids: {', '.join(aws.peek_job_ids(c, dlq_url))}")

    print("\nworkers:")
    if group is None:
        print(f"  autoscaling group {names.asg}: missing")
    else:
        in_service = sum(1 for instance in group.get("Instances", [])
                         if instance.get("LifecycleState") == "InService")
        print(f"  autoscaling group {names.asg}: desired {group['DesiredCapacity']}, "
              f"in service {in_service} (min {group['MinSize']}, max {group['MaxSize']})")
    for alarm in (names.backlog_alarm, names.idle_alarm):
        if alarm in alarm_states:
            print(f"  alarm {alarm}: {alarm_states[alarm]}")

    print("\nresources:")
    for resource, present in exists.items():
        print(f"  {'exists' if present else 'MISSING':<8} {resource}")
    if not all(exists.values()):
        print(f"\nsome resources are missing: run `python -m infra up --region {c.region} "
              f"--name {name}` to recreate them")
        return 1
    return 0
