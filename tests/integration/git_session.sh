#!/usr/bin/env bash
# git_session.sh TREE — a scripted git history in the current directory, printing
# what git reports.  Names, dates and configuration are fixed, so every hash is
# the same from run to run.  Run by git.sh, once without and once with the pool.
set -euo pipefail
tree=$1

export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 TZ=UTC LC_ALL=C
export GIT_AUTHOR_NAME='Ada Tester' GIT_AUTHOR_EMAIL=ada@example.invalid
export GIT_COMMITTER_NAME='Ada Tester' GIT_COMMITTER_EMAIL=ada@example.invalid
mkdir -p "$HOME"
git config --global init.defaultBranch main
git config --global pack.threads 1   # deterministic packs
git config --global gc.auto 0

clock=1700000000
commit() { # commit MESSAGE: a commit one hour after the previous one
  clock=$((clock + 3600))
  GIT_AUTHOR_DATE="@$clock +0000" GIT_COMMITTER_DATE="@$clock +0000" git commit -q -m "$1"
  echo "commit $(git rev-parse --short=12 HEAD) $1"
}

git init -q repo
cd repo
cp -R "$tree"/. .
git add -A
commit "import the tree"

# edit every 7th file, delete every 13th, rename every 11th
i=0
for f in $(git ls-files); do
  i=$((i + 1))
  if ((i % 13 == 0)); then git rm -q "$f"
  elif ((i % 11 == 0)); then git mv "$f" "$f.moved"
  elif ((i % 7 == 0)); then printf 'edited line %d\n' "$i" >>"$f"
  fi
done
git add -A
commit "edit, delete and rename"

git checkout -q -b topic
for f in $(git ls-files | sed -n '1~5p'); do sed -i '1s/^/topic: /' "$f"; done
git add -A
commit "topic: prefix first lines"

git checkout -q main
for f in $(git ls-files | sed -n '3~9p'); do printf 'main tail\n' >>"$f"; done
git add -A
commit "main: append tails"
clock=$((clock + 3600))
GIT_AUTHOR_DATE="@$clock +0000" GIT_COMMITTER_DATE="@$clock +0000" git merge -q --no-edit topic
echo "merge $(git rev-parse --short=12 HEAD)"

echo "== log"
git log --graph --format='%h %s' --stat=80
echo "== diff against the first commit"
git diff --stat=80 --find-renames HEAD~3 HEAD | tail -n 5
git diff HEAD~3 HEAD -- "$(git ls-files | sed -n 1p)"
echo "== grep, blame"
git grep -c 'line 1' | sed -n 1,20p
git blame --line-porcelain "$(git ls-files | sed -n 5p)" | grep -E '^(author |summary )' | sort | uniq -c
echo "== gc"
git gc -q --aggressive
git count-objects -v | grep -v '^size'
git fsck --full --no-progress
git verify-pack -v .git/objects/pack/pack-*.idx | awk '$2 ~ /blob|tree|commit/ { n[$2]++ } END { for (t in n) print t, n[t] }' | sort
git archive --format=tar HEAD | sha256sum
echo "== tree $(git rev-parse 'HEAD^{tree}')"
