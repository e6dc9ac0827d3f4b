"""Test seams shipped with the package: exchange and vLLM emulators, fakes for each Protocol."""
