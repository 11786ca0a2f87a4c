#!/usr/bin/env bash
# Set up a fresh machine: Python packages (torch first, the CPU build), and Debian's Chromium for browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
if ! command -v chromium >/dev/null 2>&1 || ! [ -d /usr/lib/ruby ] || ! [ -d /usr/share/nodejs/lodash ] || ! [ -d /usr/share/fonts/truetype/noto ] || ! [ -d /usr/share/gocode/src ] \
   || ! [ -f /usr/lib/jvm/openjdk-17/lib/src.zip ] || ! [ -d /usr/share/go-1.19/src ] || ! [ -d /usr/share/gocode/src/github.com/aws/aws-sdk-go-v2 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # chromium (+ an emoji font for screenshots): end-to-end browser tests; ruby, node-lodash, php-symfony-console: real source trees for the benchmark builder;
  # the Go, Node, Ruby and PHP packages after them: the other languages of the code-v1 fine-tuning recipe (core/training/recipes.py);
  # openjdk-17-source: the JDK's src.zip, the Java of both (it brings the JDK 17 of its own release, upgrading an older one);
  # golang-1.19-src (the Go standard library), the big Go libraries after it (the AWS, Azure and Google API SDKs, snapd...)
  # and more Ruby and PHP libraries: enough documented functions for the >= 200k real corpus of --all-sources (bench part 14);
  # about 80 MB to download, 1.4 GB on disk
  $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-color-emoji ruby node-lodash php-symfony-console \
    golang-golang-x-text-dev golang-github-spf13-cobra-dev golang-github-sirupsen-logrus-dev node-commander ruby-rack ruby-thor \
    php-guzzlehttp-psr7 openjdk-17-source \
    golang-1.19-src golang-github-aws-aws-sdk-go-dev golang-github-azure-azure-sdk-for-go-dev golang-google-api-dev golang-google-cloud-dev \
    golang-golang-x-tools-dev golang-github-snapcore-snapd-dev golang-github-gophercloud-gophercloud-dev golang-github-vmware-govmomi-dev \
    golang-github-cloudflare-circl-dev golang-github-aws-aws-sdk-go-v2-dev ruby-activesupport ruby-activerecord ruby-sequel ruby-rspec-core \
    php-symfony-http-kernel php-phpseclib3 >/dev/null
fi
