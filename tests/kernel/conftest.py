"""Kernel tests (QEMU VM, tests/kernel/vm.py) run last, after the rest of the suite."""


def pytest_collection_modifyitems(config, items):
    """Kernel tests last (./test.sh runs the whole suite, these after the rest); the order is otherwise kept."""
    items.sort(key=lambda item: item.get_closest_marker("kernel") is not None)
