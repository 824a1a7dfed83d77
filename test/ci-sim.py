"""ci-sim.py - run the CI examples of docs/examples/ci/ here, as their CI
system would, as far as this machine allows (test/700-ci-shards.t).

  ci-sim.py github WORKFLOW.yml SRC CACHE WORK
  ci-sim.py gitlab GITLAB-CI.yml SRC CACHE WORK
  ci-sim.py bazel  BUILD.bazel   SRC WORK

Every job (every shard of a matrix or of `parallel:`, every Bazel test
shard) is a machine of its own: a fresh copy of the repository SRC as its
workspace and its own pgsnap store (PGSNAP_HOME), so nothing passes between
them but what the CI system carries: CACHE (actions/cache, GitLab's cache:)
and job outputs, or a genrule's output.  What cannot run here is not
guessed at: `container:`/`image:` (the machine is the image) and
actions/checkout (the copy is the checkout); any other action or an
expression the simulator does not know fails the run.

Prints one JSON line per job: job, shard, rc, home (its store), log, and
per job kind what the CI system would show (outputs, the shard status
file, the undeclared outputs).
"""
import ast
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import yaml


def die(msg):
    sys.stderr.write("ci-sim: %s\n" % msg)
    sys.exit(2)


def machine(work, name):
    """A fresh machine: its directory, workspace path and environment."""
    d = os.path.join(work, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(os.path.join(d, "userhome"))
    os.chmod(d, 0o755)
    env = dict(os.environ)
    env["HOME"] = os.path.join(d, "userhome")
    env["PGSNAP_HOME"] = os.path.join(d, "pgsnap")
    return d, os.path.join(d, "ws"), env


def run_script(script, cwd, env, log):
    with open(log, "a") as f:
        f.write("".join("+ %s\n" % line for line in script.splitlines()))
        f.flush()
        return subprocess.run(["sh", "-e", "-c", script], cwd=cwd, env=env,
                              stdout=f, stderr=subprocess.STDOUT).returncode


def parallel(fn, items):
    results = [None] * len(items)

    def one(i):
        results[i] = fn(items[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---- GitHub Actions ---------------------------------------------------------

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def gh_eval(expr, ctx):
    """The expressions the examples use: a context path, or one compared
    with a string literal."""
    m = re.fullmatch(r"(.+?)\s*(==|!=)\s*'([^']*)'", expr.strip())
    if m:
        v = gh_eval(m.group(1), ctx)
        return "true" if (v == m.group(3)) == (m.group(2) == "==") else "false"
    v = ctx
    for part in expr.strip().split("."):
        if not isinstance(v, dict):
            die("expression %r: not a context path" % expr)
        v = v.get(part, "")
    if isinstance(v, dict):
        die("expression %r: not a value" % expr)
    return str(v).lower() if isinstance(v, bool) else str(v)


def gh_subst(text, ctx):
    return EXPR.sub(lambda m: gh_eval(m.group(1), ctx), str(text))


def cache_dir(cache, key):
    return os.path.join(cache, re.sub(r"[^A-Za-z0-9._-]", "_", key))


def gh_job(wf, jid, job, ctx, src, cache, work, tag):
    d, ws, env = machine(work, tag)
    shutil.copytree(src, ws, symlinks=True)
    log = os.path.join(d, "log")
    env.update({k: str(v) for k, v in (wf.get("env") or {}).items()})
    env.update({k: str(v) for k, v in (job.get("env") or {}).items()})
    env["GITHUB_WORKSPACE"] = ws
    ctx = dict(ctx, env={k: env[k] for k in env}, steps={})
    post, rc = [], 0
    for i, step in enumerate(job["steps"]):
        sid = step.get("id", "step%d" % i)
        cond = step.get("if")
        if rc != 0 or (cond is not None and
                       gh_eval(EXPR.sub(lambda m: m.group(1), str(cond)), ctx) != "true"):
            ctx["steps"][sid] = {"outputs": {}, "outcome": "skipped"}
            continue
        outputs = {}
        uses = step.get("uses")
        if uses and uses.startswith("actions/checkout@"):
            pass
        elif uses and re.match(r"actions/cache(/restore)?@", uses):
            w = {k: gh_subst(v, ctx) for k, v in step.get("with", {}).items()}
            path = os.path.join(ws, os.path.expanduser(w["path"]))
            c = cache_dir(cache, w["key"])
            hit = os.path.isdir(c)
            if hit:
                shutil.copytree(c, path, dirs_exist_ok=True)
            with open(log, "a") as f:
                f.write("cache %s: %s\n" % (w["key"], "hit" if hit else "miss"))
            outputs["cache-hit"] = "true" if hit else "false"
            if not hit and w.get("fail-on-cache-miss") == "true":
                rc = 1
            if not hit and "/restore@" not in uses:
                post.append((w["key"], path))
        elif uses:
            die("step %r: action %s is not simulated" % (step.get("name"), uses))
        else:
            out = os.path.join(d, "output-%d" % i)
            open(out, "w").close()
            senv = dict(env, GITHUB_OUTPUT=out)
            senv.update({k: gh_subst(v, ctx) for k, v in (step.get("env") or {}).items()})
            rc = run_script(gh_subst(step["run"], ctx), ws, senv, log)
            for line in open(out):
                k, _, v = line.rstrip("\n").partition("=")
                outputs[k] = v
        ctx["steps"][sid] = {"outputs": outputs}
    # actions/cache saves in its post step, when the job succeeded.
    for key, path in post:
        c = cache_dir(cache, key)
        if rc == 0 and os.path.isdir(path) and not os.path.isdir(c):
            shutil.copytree(path, c)
            with open(log, "a") as f:
                f.write("cache %s: saved\n" % key)
    outs = {k: gh_subst(v, ctx) for k, v in (job.get("outputs") or {}).items()}
    return {"job": jid, "shard": tag, "rc": rc, "home": env["PGSNAP_HOME"],
            "log": log, "outputs": outs}


def github(path, src, cache, work):
    wf = yaml.safe_load(open(path))
    jobs = wf["jobs"]
    done = {}
    while len(done) < len(jobs):
        ready = [j for j in jobs if j not in done and
                 all(n in done for n in _list(jobs[j].get("needs")))]
        if not ready:
            die("jobs wait for each other")
        for jid in ready:
            job = jobs[jid]
            needs = {n: {"outputs": done[n][0]["outputs"],
                         "result": "success" if all(r["rc"] == 0 for r in done[n]) else "failure"}
                     for n in _list(job.get("needs"))}
            if any(v["result"] != "success" for v in needs.values()):
                done[jid] = []
                continue
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            combos = [{}]
            for k, vals in matrix.items():
                combos = [dict(c, **{k: v}) for c in combos for v in vals]
            runs = []
            for n, combo in enumerate(combos):
                ctx = {"matrix": combo, "needs": needs,
                       "strategy": {"job-total": len(combos), "job-index": n}}
                tag = jid + ("-" + "-".join(str(v) for v in combo.values()) if combo else "")
                runs.append((ctx, tag))
            done[jid] = parallel(lambda r: gh_job(wf, jid, job, r[0], src, cache, work, r[1]), runs)
            for r in done[jid]:
                print(json.dumps(r), flush=True)


def _list(x):
    return [] if x is None else [x] if isinstance(x, str) else list(x)


# ---- GitLab CI --------------------------------------------------------------

GL_RESERVED = {"image", "services", "variables", "stages", "default", "include",
               "workflow", "cache", "before_script", "after_script"}


def gl_key(spec, ws, env):
    k = spec.get("key", "default")
    if isinstance(k, dict):
        h = hashlib.sha256()
        for f in k.get("files", []):
            h.update(open(os.path.join(ws, f), "rb").read())
        return "%s-%s" % (k.get("prefix", ""), h.hexdigest()[:40])
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m.group(1) or m.group(2), ""), k)


def gl_job(ci, jid, job, node, total, src, cache, work):
    tag = jid + ("-%d" % node if total else "")
    d, ws, env = machine(work, tag)
    shutil.copytree(src, ws, symlinks=True)
    log = os.path.join(d, "log")
    env.update({k: str(v) for k, v in (ci.get("variables") or {}).items()})
    env.update({k: str(v) for k, v in (job.get("variables") or {}).items()})
    env["CI_PROJECT_DIR"] = ws
    if total:
        env["CI_NODE_INDEX"], env["CI_NODE_TOTAL"] = str(node), str(total)
    spec = job.get("cache", ci.get("cache")) or {}
    key = gl_key(spec, ws, env) if spec else None
    policy = spec.get("policy", "pull-push")
    if key and policy in ("pull", "pull-push"):
        c = cache_dir(cache, key)
        hit = os.path.isdir(c)
        if hit:
            for p in spec.get("paths", []):
                if os.path.exists(os.path.join(c, p)):
                    shutil.copytree(os.path.join(c, p), os.path.join(ws, p), dirs_exist_ok=True)
        with open(log, "a") as f:
            f.write("cache %s: %s\n" % (key, "hit" if hit else "miss"))
    rc = run_script("\n".join(job["script"]), ws, env, log)
    if key and rc == 0 and policy in ("push", "pull-push"):
        c = cache_dir(cache, key)
        shutil.rmtree(c, ignore_errors=True)
        os.makedirs(c)
        for p in spec.get("paths", []):
            if os.path.exists(os.path.join(ws, p)):
                shutil.copytree(os.path.join(ws, p), os.path.join(c, p))
        with open(log, "a") as f:
            f.write("cache %s: saved\n" % key)
    return {"job": jid, "shard": tag, "rc": rc, "home": env["PGSNAP_HOME"], "log": log}


def gitlab(path, src, cache, work):
    ci = yaml.safe_load(open(path))
    jobs = {k: v for k, v in ci.items() if k not in GL_RESERVED and not k.startswith(".")}
    for stage in ci.get("stages", ["build", "test", "deploy"]):
        runs = []
        for jid, job in jobs.items():
            if job.get("stage", "test") != stage:
                continue
            n = job.get("parallel")
            if isinstance(n, dict):
                die("job %s: parallel:matrix is not simulated" % jid)
            runs += [(jid, job, i, n) for i in range(1, n + 1)] if n else [(jid, job, 0, 0)]
        results = parallel(lambda r: gl_job(ci, r[0], r[1], r[2], r[3], src, cache, work), runs)
        for r in results:
            print(json.dumps(r), flush=True)
        if any(r["rc"] for r in results):
            return


# ---- Bazel ------------------------------------------------------------------

def bz_value(node, pkgdir):
    """A rule attribute: literals, list + list, glob([...])."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return bz_value(node.left, pkgdir) + bz_value(node.right, pkgdir)
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glob":
        pats = ast.literal_eval(node.args[0])
        return sorted(os.path.relpath(p, pkgdir) for pat in pats
                      for p in glob.glob(os.path.join(pkgdir, pat)))
    return ast.literal_eval(node)


def bazel(path, src, work):
    pkg = os.path.relpath(os.path.dirname(os.path.abspath(path)),
                          os.path.abspath(src))
    pkgdir = os.path.join(src, pkg)
    rules = {}
    for stmt in ast.parse(open(path).read()).body:
        if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
            die("BUILD: only rule calls are simulated")
        call = stmt.value
        attrs = {kw.arg: bz_value(kw.value, pkgdir) for kw in call.keywords}
        attrs["kind"] = call.func.id
        rules[attrs["name"]] = attrs
    # The genrules, in an execroot: sources at their paths, outputs under
    # bazel-out/bin.  Run as Bazel does: bash -c CMD in the execroot.
    d, execroot, env = machine(work, "genrule")
    shutil.copytree(src, execroot, symlinks=True)
    bin_pkg = os.path.join("bazel-out/bin", pkg)
    os.makedirs(os.path.join(execroot, bin_pkg))
    outs = {}

    def path(label, base):
        """execpath (base bin_pkg) or rootpath (base pkg) of a label."""
        label = label.lstrip(":")
        if label in rules:
            return " ".join(os.path.join(base, o) for o in rules[label]["outs"])
        return os.path.join(pkg, label)
    for name, r in rules.items():
        if r["kind"] != "genrule":
            continue
        outs[name] = [os.path.join(bin_pkg, o) for o in r["outs"]]
        cmd = r["cmd"].replace("$@", outs[name][0]).replace("$(RULEDIR)", bin_pkg)
        cmd = re.sub(r"\$\((?:location|execpath) ([^)]+)\)",
                     lambda m: path(m.group(1), bin_pkg), cmd)
        cmd = cmd.replace("$$", "$")
        log = os.path.join(d, "log")
        with open(log, "a") as f:
            f.write("+ %s\n" % cmd)
            f.flush()
            rc = subprocess.run(["bash", "-c", cmd], cwd=execroot, env=env,
                                stdout=f, stderr=subprocess.STDOUT).returncode
        missing = [o for o in outs[name] if not os.path.exists(os.path.join(execroot, o))]
        print(json.dumps({"job": name, "shard": "genrule", "rc": rc or len(missing),
                          "home": env["PGSNAP_HOME"], "log": log}), flush=True)
        if rc or missing:
            return
    # The tests: each shard in a runfiles tree of its own (sources and
    # outputs side by side under the package), its cwd the workspace root.
    for name, r in rules.items():
        if r["kind"] != "sh_test":
            continue
        total = r.get("shard_count", 0)

        def shard(i):
            d, root, env = machine(work, "%s-%d" % (name, i))
            for f in r["srcs"] + r.get("data", []):
                if f.lstrip(":") in rules:
                    for o in outs[f.lstrip(":")]:
                        dst = os.path.join(root, pkg, os.path.relpath(o, bin_pkg))
                        os.makedirs(os.path.dirname(dst), exist_ok=True)
                        shutil.copy2(os.path.join(execroot, o), dst)
                else:
                    dst = os.path.join(root, pkg, f)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(os.path.join(pkgdir, f), dst)
            tmp, undeclared = os.path.join(d, "tmp"), os.path.join(d, "outputs")
            os.makedirs(tmp)
            os.makedirs(undeclared)
            status = os.path.join(d, "shard-status")
            env.update(TEST_TMPDIR=tmp, TEST_UNDECLARED_OUTPUTS_DIR=undeclared,
                       TEST_SRCDIR=os.path.dirname(root), TEST_WORKSPACE=os.path.basename(root))
            env["PGSNAP_HOME"] = os.path.join(tmp, "pgsnap")   # as the test sets it
            if total:
                env.update(TEST_TOTAL_SHARDS=str(total), TEST_SHARD_INDEX=str(i),
                           TEST_SHARD_STATUS_FILE=status)
            args = [re.sub(r"\$\((?:location|rootpath) ([^)]+)\)",
                           lambda m: path(m.group(1), pkg), a) for a in r.get("args", [])]
            log = os.path.join(d, "log")
            with open(log, "w") as f:
                rc = subprocess.run([os.path.join(pkg, r["srcs"][0])] + args, cwd=root,
                                    env=env, stdout=f, stderr=subprocess.STDOUT).returncode
            return {"job": name, "shard": i, "rc": rc, "home": env["PGSNAP_HOME"],
                    "log": log, "status_file": os.path.exists(status),
                    "outputs": sorted(os.listdir(undeclared))}
        for res in parallel(shard, list(range(max(total, 1)))):
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "github":
        github(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "gitlab":
        gitlab(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "bazel":
        bazel(*sys.argv[2:])
    else:
        die("usage: ci-sim.py github|gitlab FILE SRC CACHE WORK | bazel BUILD SRC WORK")
