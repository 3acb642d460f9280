# shellcheck shell=bash
# stage NAME: prints how long the stage before it took, so a slow run shows where its time went.
# Sourced by scripts/test and scripts/test-compose; the first stage is named by STAGE_FIRST.
stage_started=$SECONDS
stage_name=${STAGE_FIRST:-install}
stage() {
  echo "stage: $stage_name took $((SECONDS - stage_started)) s"
  stage_name=$1
  stage_started=$SECONDS
}
