#!/usr/bin/env python3
"""Tests for scripts/scan-test-logs.py: each kind of secret planted in a log is
found (and named by file and line, without the secret), a clean log passes,
and the PIN list covers the SoftHSM2 fixture's default PINs."""

import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCANNER = os.path.join(HERE, "..", "scan-test-logs.py")
ROOT = os.path.join(HERE, "..", "..")

# An ES256 JWS: {"alg":"ES256","typ":"at+jwt"} . {"sub":"x"} . 64-byte signature.
TOKEN = ("eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0."
         "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")
CLEAN = [
    '{"ts":1,"level":"info","msg":"token issued","jti":"5f0c","token":"eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9..."}',
    '{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}',
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "[ RUN      ] Pkcs11KeyManagerTest.WrongPinIsRefused",
]


def scan(*paths):
    return subprocess.run([sys.executable, SCANNER, *paths], capture_output=True, text=True)


class ScanTestLogsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def write(self, name, lines):
        path = os.path.join(self.dir.name, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_clean_logs_pass(self):
        self.write("LastTest.log", CLEAN)
        result = scan(self.dir.name)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout, "")

    def test_each_secret_is_found_and_not_echoed(self):
        planted = {
            "whole signed token": f'{{"msg":"issued","access_token":"{TOKEN}"}}',
            "PEM private key": "-----BEGIN EC PRIVATE KEY-----",
            "private JWK member": '{"kty":"EC","d":"jpsQnnGQmL-YBIffH1136cLSMDlh6eDgcv8bK5hBzR4"}',
            "test PIN": "login with 1234-user-pin",
        }
        for kind, line in planted.items():
            with self.subTest(kind=kind):
                path = self.write(f"sub/{kind.replace(' ', '_')}.log", CLEAN + [line])
                result = scan(path)
                self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
                self.assertIn(f"{path}:{len(CLEAN) + 1}: ", result.stdout)
                self.assertIn(kind.split()[0], result.stdout.lower() + result.stdout)
                self.assertNotIn(line.split('"')[-2] if '"' in line else line, result.stdout)

    def test_escaped_json_in_json_is_found(self):
        path = self.write("v.log", ['{"body":"{\\"d\\":\\"jpsQnnGQmL-YBIffH1136cLSMDlh6eDgcv8bK5hBzR4\\"}"}'])
        self.assertEqual(scan(path).returncode, 1)

    def test_binary_files_are_skipped(self):
        path = os.path.join(self.dir.name, "tpm-state")
        with open(path, "wb") as f:
            f.write(b"\0\1\2" + TOKEN.encode())
        self.assertEqual(scan(self.dir.name).returncode, 0)

    def test_missing_paths_are_a_usage_error(self):
        self.assertEqual(scan(os.path.join(self.dir.name, "nope")).returncode, 2)

    def test_pin_list_covers_the_softhsm_fixture_defaults(self):
        header = os.path.join(ROOT, "hsm/include/agentroot/hsm/testing/scoped_softhsm_token.h")
        with open(header) as f:
            defaults = re.findall(r'std::string (?:user_pin|so_pin) = "([^"]+)"', f.read())
        self.assertEqual(len(defaults), 2, "fixture PIN defaults not found in " + header)
        for pin in defaults:
            path = self.write(f"{pin}.log", [f"pin {pin}"])
            self.assertEqual(scan(path).returncode, 1, f"the scanner does not look for the fixture PIN {pin!r}")


if __name__ == "__main__":
    unittest.main()
