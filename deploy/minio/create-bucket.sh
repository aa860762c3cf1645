#!/bin/sh
# Sets up the object store for Epochscope in MinIO (compose's one-shot `store-init`, minio/mc image):
# the bucket, a read-write user for the API (uploads) and a user for the trainers that reads (downloads
# by the keys in job-start events) and writes only checkpoints under jobs/. Idempotent: safe to run on every `up`.
#
# Environment: MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD, STORE_BUCKET,
# STORE_API_ACCESS_KEY, STORE_API_SECRET_KEY, STORE_TRAINER_ACCESS_KEY, STORE_TRAINER_SECRET_KEY.
set -eu
: "${MINIO_URL:=http://minio:9000}"
: "${STORE_BUCKET:?}" "${STORE_API_ACCESS_KEY:?}" "${STORE_API_SECRET_KEY:?}"
: "${STORE_TRAINER_ACCESS_KEY:?}" "${STORE_TRAINER_SECRET_KEY:?}"
MC="${MC:-mc}"
policies="$(mktemp -d)"
trap 'rm -rf "$policies"' EXIT

"$MC" alias set store "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
"$MC" mb --ignore-existing "store/$STORE_BUCKET"

# The API writes, reads and deletes datasets (multipart uploads included).
cat >"$policies/epochscope-api.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
   "Resource": ["arn:aws:s3:::$STORE_BUCKET"]},
  {"Effect": "Allow",
   "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
   "Resource": ["arn:aws:s3:::$STORE_BUCKET/*"]}
]}
JSON
# Trainers read objects by key (no listing), and write and delete only under jobs/ (checkpoints).
cat >"$policies/epochscope-trainer-read.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::$STORE_BUCKET/*"]},
  {"Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
   "Resource": ["arn:aws:s3:::$STORE_BUCKET/jobs/*"]}
]}
JSON

user() {  # user <access key> <secret key> <policy>
  "$MC" admin policy create store "$3" "$policies/$3.json"
  "$MC" admin user add store "$1" "$2"
  # Attaching a policy the user already has is an error; an existing attachment is fine.
  "$MC" admin policy attach store "$3" --user "$1" 2>/dev/null \
    || "$MC" admin user info store "$1" | grep -q "$3"
}
user "$STORE_API_ACCESS_KEY" "$STORE_API_SECRET_KEY" epochscope-api
user "$STORE_TRAINER_ACCESS_KEY" "$STORE_TRAINER_SECRET_KEY" epochscope-trainer-read
echo "bucket $STORE_BUCKET ready: $STORE_API_ACCESS_KEY read-write, $STORE_TRAINER_ACCESS_KEY read + jobs/ write"
