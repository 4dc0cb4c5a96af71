"""A throw-away certificate authority and server certificates for loopback tests."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# the addresses a device reaches cloudsim by: loopback on the host, and the
# address the emulated ESP32 dials for a forwarded host port (onboard esp32 run)
SERVER_NAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1", "192.168.4.100")
OCF_IDENTITY = "1.3.6.1.4.1.44924.1.6"  # the extended key usage of an OCF identity certificate
# the forms a device's certificate and key come in (device_form)
DEVICE_FORMS = ("PEM", "DER", "openssl ecparam")
# P-256 named, as `openssl ecparam -name prime256v1 -genkey` writes it before the key
EC_PARAMETERS = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"


def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _validity(builder, days, not_before=None, not_after=None):
    # not_before, not_after: datetimes (UTC) chosen by the caller, e.g. a certificate
    # that has expired or is not yet valid; else from an hour ago for `days` days
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(not_before or now - datetime.timedelta(hours=1)) \
        .not_valid_after(not_after or now + datetime.timedelta(days=days))


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def device_form(cert, key, form):
    """(cert, key) bytes of a certificate and its key (PEM, as issue_device
    gives them) in one of DEVICE_FORMS: PEM (the key as PKCS#8), DER (both),
    or as `openssl ecparam -genkey` writes a key (PEM: the curve's
    parameters, then the key in SEC 1)."""
    if form == "DER":
        cert = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
        key = serialization.load_pem_private_key(key, None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
    elif form == "openssl ecparam":
        key = EC_PARAMETERS + serialization.load_pem_private_key(key, None).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption())
    elif form != "PEM":
        raise ValueError(f"form: one of {DEVICE_FORMS}")
    return cert, key


class CA:
    """A CA whose certificate the device trusts; issues server certificates."""

    def __init__(self, common="onboard cloudsim CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
        builder = _validity(builder, 3650).serial_number(x509.random_serial_number())
        builder = builder.public_key(self.key.public_key()).add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        self.cert = builder.sign(self.key, hashes.SHA256())

    @classmethod
    def load(cls, cert_pem, key_pem):
        """A CA saved earlier with pem() and key_pem()."""
        ca = cls.__new__(cls)
        ca.cert = x509.load_pem_x509_certificate(cert_pem)
        ca.key = serialization.load_pem_private_key(key_pem, None)
        return ca

    def key_pem(self):
        return _key_pem(self.key)

    def pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue(self, names=SERVER_NAMES, ips=SERVER_IPS, not_before=None, not_after=None):
        """(cert PEM, key PEM) for a server known by these DNS names and IPs, valid
        from not_before to not_after (UTC datetimes; default: an hour ago, 825 days)."""
        if not_before and not_after and not_after <= not_before:
            raise ValueError("not_after: must be later than not_before")
        key = ec.generate_private_key(ec.SECP256R1())
        alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                  for i in ips]
        builder = x509.CertificateBuilder().subject_name(_name((list(names) or list(ips))[0]))
        builder = _validity(builder.issuer_name(self.cert.subject), 825, not_before, not_after)
        builder = builder.serial_number(x509.random_serial_number()).public_key(key.public_key())
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def issue_device(self, di, usages=None):
        """(cert PEM, key PEM) of an OCF device identity certificate for the
        device id di (subject CN uuid:<di>), as plgd hub's certificate
        authority signs one: extended key usages client and server
        authentication and OCF's identity (usages: others instead)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateBuilder().subject_name(_name("uuid:" + di))
        builder = _validity(builder.issuer_name(self.cert.subject), 365)
        builder = builder.serial_number(x509.random_serial_number()).public_key(key.public_key())
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages if usages is not None else [
            ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH,
            x509.ObjectIdentifier(OCF_IDENTITY)]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def write_server(self, folder, stem="server", **kw):
        """Write <stem>.pem and <stem>.key into folder; return their paths."""
        folder = Path(folder)
        cert, key = self.issue(**kw)
        (folder / f"{stem}.pem").write_bytes(cert)
        (folder / f"{stem}.key").write_bytes(key)
        (folder / f"{stem}.key").chmod(0o600)
        return folder / f"{stem}.pem", folder / f"{stem}.key"
