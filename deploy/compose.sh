#!/bin/sh
# Run docker compose on Epochscope's production-shaped stack with its settings file.
#
#   deploy/compose.sh                        # = up -d --build --wait: build, start, wait until healthy
#   deploy/compose.sh up -d --scale writer=4 # any other docker compose arguments
#   deploy/compose.sh logs -f writer
#
# On first use it writes deploy/.env (mode 600) from deploy/compose.env.example with fresh random
# secrets; edit it to change any setting. The trainer's profile follows the machine: "gpu" where
# nvidia-smi lists a GPU, "cpu" elsewhere; set COMPOSE_PROFILES to choose yourself.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
env_file="${ENV_FILE:-$here/.env}"

secret() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
# An Ed25519 pair (the dispatcher's, the trainer's identity) as base64 raw keys: the private key's last 32 DER bytes
# are its seed, the public's its key.
raw_private() { printf '%s\n' "$1" | openssl pkey -outform DER | tail -c 32 | base64; }
raw_public() { printf '%s\n' "$1" | openssl pkey -pubout -outform DER | tail -c 32 | base64; }
cluster_id() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-22; }

if [ ! -f "$env_file" ]; then
  umask 077
  dispatch_pem="$(openssl genpkey -algorithm ed25519)"
  identity_pem="$(openssl genpkey -algorithm ed25519)"
  sed -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(secret)/" \
      -e "s/^EPOCHSCOPE_API_DB_PASSWORD=.*/EPOCHSCOPE_API_DB_PASSWORD=$(secret)/" \
      -e "s/^EPOCHSCOPE_WRITER_DB_PASSWORD=.*/EPOCHSCOPE_WRITER_DB_PASSWORD=$(secret)/" \
      -e "s/^EPOCHSCOPE_JWT_SECRET=.*/EPOCHSCOPE_JWT_SECRET=$(secret)/" \
      -e "s/^EPOCHSCOPE_JOB_TOKEN_SECRET=.*/EPOCHSCOPE_JOB_TOKEN_SECRET=$(secret)/" \
      -e "s|^EPOCHSCOPE_TRAINER_IDENTITY_KEY=.*|EPOCHSCOPE_TRAINER_IDENTITY_KEY=$(raw_private "$identity_pem")|" \
      -e "s|^EPOCHSCOPE_ACCEPTED_TRAINER_KEYS=.*|EPOCHSCOPE_ACCEPTED_TRAINER_KEYS=$(raw_public "$identity_pem")|" \
      -e "s|^EPOCHSCOPE_DISPATCH_PRIVATE_KEY=.*|EPOCHSCOPE_DISPATCH_PRIVATE_KEY=$(raw_private "$dispatch_pem")|" \
      -e "s|^EPOCHSCOPE_DISPATCH_PUBLIC_KEYS=.*|EPOCHSCOPE_DISPATCH_PUBLIC_KEYS=$(raw_public "$dispatch_pem")|" \
      -e "s/^KAFKA_CLUSTER_ID=.*/KAFKA_CLUSTER_ID=$(cluster_id)/" \
      -e "s/^MINIO_ROOT_PASSWORD=.*/MINIO_ROOT_PASSWORD=$(secret)/" \
      -e "s/^STORE_API_SECRET_KEY=.*/STORE_API_SECRET_KEY=$(secret)/" \
      -e "s/^STORE_TRAINER_SECRET_KEY=.*/STORE_TRAINER_SECRET_KEY=$(secret)/" \
      -e "s/^KAFKA_ADMIN_PASSWORD=.*/KAFKA_ADMIN_PASSWORD=$(secret)/" \
      -e "s/^KAFKA_API_PASSWORD=.*/KAFKA_API_PASSWORD=$(secret)/" \
      -e "s/^KAFKA_TRAINER_PASSWORD=.*/KAFKA_TRAINER_PASSWORD=$(secret)/" \
      -e "s/^KAFKA_WRITER_PASSWORD=.*/KAFKA_WRITER_PASSWORD=$(secret)/" \
      "$here/compose.env.example" >"$env_file"
  echo "wrote $env_file with fresh secrets" >&2
fi

if [ -z "${COMPOSE_PROFILES:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    COMPOSE_PROFILES=gpu
  else
    COMPOSE_PROFILES=cpu
  fi
  export COMPOSE_PROFILES
fi

[ "$#" -gt 0 ] || set -- up -d --build --wait
exec docker compose --project-directory "$root" -f "$root/docker-compose.yml" --env-file "$env_file" "$@"
