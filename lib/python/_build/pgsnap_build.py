"""A PEP 517 build backend in the standard library alone, for this package.

Why not setuptools: before 70.1 it cannot build a wheel without the `wheel`
package (Debian 12 ships 66.1; pyenv's Pythons have no `wheel`), and offline
pip cannot fetch it.  This backend needs nothing, so `pip install lib/python`
works offline on any Python >= 3.8, with or without build isolation.

It reads [project] from pyproject.toml and builds a pure-Python wheel of the
packages named in [tool.pgsnap-build], an sdist, and an editable wheel (a .pth
file pointing at this tree).
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Reproducible archives (SOURCE_DATE_EPOCH, else the zip format's first day).
EPOCH = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)


# ---- pyproject.toml ---------------------------------------------------------------


def _toml_subset(text):
    """Tables, strings and arrays of strings (what our pyproject.toml holds),
    for Pythons without tomllib.  Anything else is an error, not a guess."""
    doc = {}
    table = doc
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        if m:
            table = doc
            for part in m.group(1).split("."):
                table = table.setdefault(part, {})
            continue
        m = re.fullmatch(r'([A-Za-z0-9_-]+)\s*=\s*(.*)', line)
        if not m:
            raise ValueError("pyproject.toml: cannot read %r" % raw)
        key, value = m.groups()
        if value.startswith("[") and not value.rstrip().endswith("]"):
            for more in lines:
                value += " " + more.split("#", 1)[0].strip()
                if value.rstrip().endswith("]"):
                    break
        table[key] = _toml_value(value.strip(), raw)
    return doc


def _toml_value(value, raw):
    if value.startswith("["):
        items = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
        if re.sub(r'"((?:[^"\\]|\\.)*)"|[\s,\[\]]', "", value):
            raise ValueError("pyproject.toml: cannot read %r" % raw)
        return items
    m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', value)
    if not m:
        raise ValueError("pyproject.toml: cannot read %r" % raw)
    return m.group(1)


def _pyproject():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib
    except ImportError:
        return _toml_subset(data.decode("utf-8"))
    return tomllib.loads(data.decode("utf-8"))


class _Project:
    def __init__(self):
        doc = _pyproject()
        p = doc["project"]
        self.name = p["name"]
        self.version = p["version"]
        self.dist = re.sub(r"[-_.]+", "_", self.name).lower()
        self.packages = doc["tool"]["pgsnap-build"]["packages"]
        self.entry_points = p.get("entry-points", {})
        self.p = p

    @property
    def dist_info(self):
        return "%s-%s.dist-info" % (self.dist, self.version)

    def metadata(self):
        p = self.p
        out = ["Metadata-Version: 2.1", "Name: " + self.name, "Version: " + self.version]
        if "description" in p:
            out.append("Summary: " + p["description"])
        if "requires-python" in p:
            out.append("Requires-Python: " + p["requires-python"])
        out += ["Classifier: " + c for c in p.get("classifiers", [])]
        out += ["Requires-Dist: " + d for d in p.get("dependencies", [])]
        for extra, deps in p.get("optional-dependencies", {}).items():
            out.append("Provides-Extra: " + extra)
            out += ['Requires-Dist: %s; extra == "%s"' % (d, extra) for d in deps]
        body = ""
        if "readme" in p:
            out.append("Description-Content-Type: text/markdown")
            with open(os.path.join(HERE, p["readme"]), encoding="utf-8") as f:
                body = f.read()
        return "\n".join(out) + "\n\n" + body

    def dist_info_files(self, editable=False):
        files = {
            "METADATA": self.metadata(),
            "WHEEL": "Wheel-Version: 1.0\nGenerator: pgsnap_build\n"
                     "Root-Is-Purelib: true\nTag: py3-none-any\n",
            "top_level.txt": "".join(p + "\n" for p in self.packages),
        }
        if self.entry_points:
            files["entry_points.txt"] = "".join(
                "[%s]\n%s\n" % (group, "".join("%s = %s\n" % kv for kv in eps.items()))
                for group, eps in self.entry_points.items())
        return {"%s/%s" % (self.dist_info, k): v.encode("utf-8") for k, v in files.items()}

    def sources(self):
        """(path in the archive, path on disk) of the packages' files."""
        for pkg in self.packages:
            top = os.path.join(HERE, pkg)
            for d, dirs, names in os.walk(top):
                dirs[:] = sorted(x for x in dirs if x != "__pycache__")
                for n in sorted(names):
                    if not n.endswith((".pyc", ".pyo")):
                        full = os.path.join(d, n)
                        yield os.path.relpath(full, HERE).replace(os.sep, "/"), full


def _write_wheel(directory, project, files):
    name = "%s-%s-py3-none-any.whl" % (project.dist, project.version)
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            info = zipfile.ZipInfo(arc, date_time=_zip_time())
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arc, digest.decode(), len(data)))
        rec = project.dist_info + "/RECORD"
        record.append(rec + ",,")
        info = zipfile.ZipInfo(rec, date_time=_zip_time())
        info.external_attr = 0o644 << 16
        z.writestr(info, "\n".join(record) + "\n")
    return name


def _zip_time():
    return time.gmtime(EPOCH)[:6]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- PEP 517 / 660 hooks ------------------------------------------------------------


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _Project()
    for arc, data in project.dist_info_files().items():
        path = os.path.join(metadata_directory, arc)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return project.dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _Project()
    files = [(arc, _read(full)) for arc, full in project.sources()]
    files += sorted(project.dist_info_files().items())
    return _write_wheel(wheel_directory, project, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    project = _Project()
    files = [(project.dist + ".pth", (HERE + "\n").encode("utf-8"))]
    files += sorted(project.dist_info_files().items())
    return _write_wheel(wheel_directory, project, files)


def build_sdist(sdist_directory, config_settings=None):
    project = _Project()
    base = "%s-%s" % (project.dist, project.version)
    name = base + ".tar.gz"
    members = [("pyproject.toml", os.path.join(HERE, "pyproject.toml"))]
    if "readme" in project.p:
        members.append((project.p["readme"], os.path.join(HERE, project.p["readme"])))
    members.append(("_build/pgsnap_build.py", os.path.abspath(__file__)))
    members += list(project.sources())
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        entries = [(arc, _read(full)) for arc, full in members]
        entries.append(("PKG-INFO", project.metadata().encode("utf-8")))
        for arc, data in entries:
            info = tarfile.TarInfo("%s/%s" % (base, arc))
            info.size = len(data)
            info.mtime = EPOCH
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return name
