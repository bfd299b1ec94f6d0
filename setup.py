"""Map the top-level folders to sub-packages of the one `corrtrace` distribution.

Generic folder names (`middleware`, `alerts`) must never become top-level imports in a user's environment,
so each folder is installed under `corrtrace.` and its sub-packages are discovered here.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "corrtrace": "corrtrace",
    "corrtrace.middleware": "middleware",
    "corrtrace.collector": "collector",
    "corrtrace.alerts": "alerts",
    "corrtrace.txmanager": "txmanager",
    "corrtrace.dashboards": "dashboards",
    "corrtrace.demo": "demo-services",
}


def _packages() -> list[str]:
    found = []
    for package, folder in FOLDERS.items():
        found.append(package)
        found += [f"{package}.{sub}" for sub in find_packages(folder)]
    return found


PACKAGE_DATA = {"": ["*.yaml", "*.json", "py.typed"], "corrtrace.dashboards.schemas": ["LICENSE", "SHA256SUMS", "*.md"]}

setup(packages=_packages(), package_dir=FOLDERS, package_data=PACKAGE_DATA)
