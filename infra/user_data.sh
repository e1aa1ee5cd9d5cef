#!/bin/bash
# Boot script of a perfrnn GPU worker (EC2 user data), rendered by
# `python -m infra up` (see infra/user_data.sh). It runs once, as root, on the
# first boot of each instance of the Auto Scaling group: it installs the code
# and styles from the bucket, sets up .venv with webapp/setup.sh, and starts
# `python -m webapp.jobs.worker` as a systemd service that polls the SQS queues.
# Its output goes to /var/log/perfrnn-bootstrap.log and the EC2 console log.
set -euo pipefail
exec > >(tee -a /var/log/perfrnn-bootstrap.log) 2>&1

DEPLOYMENT={{DEPLOYMENT}}
REGION={{REGION}}
BUCKET={{BUCKET}}
GENERATION_QUEUE_URL={{GENERATION_QUEUE_URL}}
TRAINING_QUEUE_URL={{TRAINING_QUEUE_URL}}
APP_DIR=/opt/perfrnn
APP_USER=perfrnn

export AWS_DEFAULT_REGION="$REGION" DEBIAN_FRONTEND=noninteractive
echo "perfrnn worker for deployment $DEPLOYMENT: bootstrapping"

# The AWS CLI comes with the Deep Learning AMI; install it on other images.
if ! command -v aws >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q unzip curl
  curl -fsSL https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip -o /tmp/awscli.zip
  unzip -q /tmp/awscli.zip -d /tmp && /tmp/aws/install
fi

# webapp/setup.sh needs Python 3.11; Ubuntu 22.04 ships 3.10.
if ! command -v python3.11 >/dev/null 2>&1; then
  apt-get update -q
  if ! apt-get install -y -q python3.11 python3.11-venv; then
    apt-get install -y -q software-properties-common
    add-apt-repository -y ppa:deadsnakes/ppa
    apt-get update -q
    apt-get install -y -q python3.11 python3.11-venv
  fi
fi

id -u "$APP_USER" >/dev/null 2>&1 ||
  useradd --system --create-home --home-dir /var/lib/perfrnn --shell /usr/sbin/nologin "$APP_USER"

# The same code and styles as every other worker: deploy/ and bundles/ in the bucket.
mkdir -p "$APP_DIR/bundles"
aws s3 cp "s3://$BUCKET/deploy/perfrnn.tar.gz" /tmp/perfrnn.tar.gz --only-show-errors
tar -xzf /tmp/perfrnn.tar.gz -C "$APP_DIR"
aws s3 sync "s3://$BUCKET/bundles/" "$APP_DIR/bundles/" --only-show-errors
chown -R "$APP_USER:$APP_USER" "$APP_DIR"

sudo -H -u "$APP_USER" bash "$APP_DIR/webapp/setup.sh"

# requirements.txt pins tensorflow-cpu; with an NVIDIA GPU, put the CUDA build
# of the same version in its place.
if nvidia-smi >/dev/null 2>&1; then
  tf_version=$(sed -n 's/^tensorflow-cpu==\([^ ]*\).*/\1/p' "$APP_DIR/requirements.txt")
  if [ -n "$tf_version" ]; then
    sudo -H -u "$APP_USER" "$APP_DIR/.venv/bin/python" -m pip uninstall --quiet -y tensorflow-cpu
    sudo -H -u "$APP_USER" "$APP_DIR/.venv/bin/python" -m pip install --quiet \
      "tensorflow[and-cuda]==$tf_version"
  fi
fi

install -d -m 0755 /etc/perfrnn
cat > /etc/perfrnn/worker.env <<ENV
JOB_BACKEND=sqs
STORAGE=s3
S3_BUCKET=$BUCKET
SQS_GENERATION_QUEUE_URL=$GENERATION_QUEUE_URL
SQS_TRAINING_QUEUE_URL=$TRAINING_QUEUE_URL
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
ENV
chmod 0644 /etc/perfrnn/worker.env

cat > /etc/systemd/system/perfrnn-worker.service <<UNIT
[Unit]
Description=perfrnn GPU worker (jobs from SQS, results to S3)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$APP_USER
WorkingDirectory=$APP_DIR
EnvironmentFile=/etc/perfrnn/worker.env
ExecStart=$APP_DIR/.venv/bin/python -m webapp.jobs.worker
Restart=always
RestartSec=5
# A stopping worker hands its job back to the queue; give it time to.
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now perfrnn-worker.service
echo "perfrnn worker for deployment $DEPLOYMENT: started"
