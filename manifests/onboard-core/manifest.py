# onboard's core: the state machine and what every product needs beside it
# (credential store, logging, codes, wall clock, the clouds' shared helpers).
# A product requires one cloud's manifest (onboard-blynk, ...), which brings
# this one through onboard-base. Modules are listed by name: a new module of
# lib/onboard goes into exactly one component (tests_host/test_manifests.py).
metadata(description="onboard core: runtime, store, log, codes, clock", version="0.1.0")

package(
    "onboard",
    files=(
        "codes.py",
        "log.py",
        "store.py",
        "storeread.py",
        "storewrite.py",
        "clock.py",
        "runtime.py",
        "trial.py",
        "boot.py",
        "session.py",
        "failed.py",
        "cloud.py",
    ),
    base_path="../../lib", opt=3,
)
