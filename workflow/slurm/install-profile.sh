#!/bin/sh
# Install the project's SLURM profile template as the user's `slurm` profile, so that
# `snakemake --profile slurm` works from the repository root:
#
#   workflow/slurm/install-profile.sh            # -> ${XDG_CONFIG_HOME:-~/.config}/snakemake/slurm/config.yaml
#   workflow/slurm/install-profile.sh --force    # replace an existing copy (yours is kept as config.yaml.bak)
#
# Then set your partition (and account, if your cluster wants one) in the copy.
set -eu
template="$(cd "$(dirname "$0")/../profiles/slurm" && pwd)/config.yaml"
dest="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm"
if [ -e "$dest/config.yaml" ] && [ "${1:-}" != "--force" ]; then
  if cmp -s "$template" "$dest/config.yaml"; then
    echo "$dest/config.yaml: already installed"
  else
    echo "$dest/config.yaml exists and differs from the template (kept; --force replaces it):" >&2
    diff -u "$dest/config.yaml" "$template" >&2 || true
  fi
  exit 0
fi
mkdir -p "$dest"
[ -e "$dest/config.yaml" ] && cp "$dest/config.yaml" "$dest/config.yaml.bak"
cp "$template" "$dest/config.yaml"
echo "installed $dest/config.yaml: set slurm_partition (and slurm_account) there, then: snakemake --profile slurm"
