//! Fixtures shared by the TLS integration tests: a PKI (root → site CA → devices) made with the
//! crate's own CA, contexts built on it, and an in-memory pump between two sessions.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use zeroize::Zeroizing;
use ztmesh_core::pki::{
    build_csr, CaParams, CertSigner, CertificateAuthority, CertificateRequest, DeviceCertRequest, IssuedCertificate,
    PeerPolicy, RecordEntry, RevocationReason, RevocationSet, SoftwareSigner, TrustStore, VerifiedRecord,
};
use ztmesh_core::tls::{
    ClientSettings, PqPolicy, ServerSettings, TlsClientContext, TlsError, TlsServerContext, TlsSession,
};

pub const DAY: Duration = Duration::from_secs(24 * 3600);
pub const TENANT: &str = "property-1";

/// A root and a site CA, created 30 days ago so that expired device certificates can be issued.
pub struct Pki {
    pub root: CertificateAuthority,
    pub site: CertificateAuthority,
    pub trust: TrustStore,
}

/// A device: its key (PKCS#8) and certificate, and its chain (leaf, site CA).
pub struct Device {
    pub pkcs8: Zeroizing<Vec<u8>>,
    pub issued: IssuedCertificate,
    pub chain: Vec<Vec<u8>>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        Self::with_tenants(name, &[])
    }

    /// A PKI whose site CA is bound to `tenants` by name constraints (none: unconstrained).
    pub fn with_tenants(name: &str, tenants: &[&str]) -> Self {
        let created = SystemTime::now() - 30 * DAY;
        let mut root_params = CaParams::root(format!("{name} root"), "ztmesh test");
        root_params.now = created;
        let root = CertificateAuthority::create_root(&root_params).unwrap().authority().unwrap();
        let mut site_params = CaParams::site(format!("{name} site"), "ztmesh test");
        site_params.now = created;
        site_params.tenants = tenants.iter().map(|t| (*t).to_owned()).collect();
        let site = root.create_site_ca(&site_params).unwrap().authority().unwrap();
        let trust = TrustStore::from_der(&[root.certificate_der()]).unwrap();
        Self { root, site, trust }
    }

    pub fn device(&self, device_id: &str, tenant: &str) -> Device {
        self.device_with(DeviceCertRequest::new(device_id, tenant))
    }

    pub fn device_with(&self, request: DeviceCertRequest) -> Device {
        let signer = SoftwareSigner::generate().unwrap();
        let csr = build_csr(&signer, &request.device_id, &request.tenant).unwrap();
        let issued = self.site.issue(&CertificateRequest::from_der(&csr.der).unwrap(), &request).unwrap();
        let chain = vec![issued.der.clone(), self.site.certificate_der().to_vec()];
        Device { pkcs8: signer.to_pkcs8(), issued, chain }
    }

    /// A revocation set holding `devices`, from a record signed by the site CA.
    pub fn revoke(&self, devices: &[&Device]) -> RevocationSet {
        let now = SystemTime::now();
        let entries: Vec<RecordEntry> = devices
            .iter()
            .map(|d| RecordEntry {
                serial: hex::decode(pad_even(&d.issued.serial)).unwrap(),
                spki_sha256: d.issued.spki_sha256,
                reason: RevocationReason::KeyCompromise,
                revoked_at: now,
            })
            .collect();
        let record = self.site.sign_revocation_record(1, now, &entries).unwrap();
        let issuer = self.trust.issuer(&[self.site.certificate_der(), self.root.certificate_der()], now).unwrap();
        let mut set = RevocationSet::new();
        set.add_record(&VerifiedRecord::from_bytes(&record, &issuer).unwrap()).unwrap();
        set
    }
}

fn pad_even(hex: &str) -> String {
    if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_owned()
    }
}

impl Device {
    pub fn signer(&self) -> Box<dyn CertSigner + Send + Sync> {
        Box::new(SoftwareSigner::from_pkcs8(&self.pkcs8).unwrap())
    }
}

/// Server settings for `device` under `pki`, clients expected in [`TENANT`].
pub fn server_settings(pki: &Pki, device: &Device, pq: PqPolicy) -> ServerSettings {
    let mut settings = ServerSettings::new(device.chain.clone(), device.signer(), pki.trust.clone());
    settings.policy = PeerPolicy { expected_tenant: Some(TENANT.into()), ..PeerPolicy::default() };
    settings.pq = pq;
    settings
}

/// Client settings for `device` under `pki`, servers expected in [`TENANT`].
pub fn client_settings(pki: &Pki, device: &Device, pq: PqPolicy) -> ClientSettings {
    let mut settings = ClientSettings::new(device.chain.clone(), device.signer(), pki.trust.clone());
    settings.policy = PeerPolicy { expected_tenant: Some(TENANT.into()), ..PeerPolicy::default() };
    settings.pq = pq;
    settings
}

/// A server and a client context under one PKI, with the given policies.
pub struct Pair {
    pub pki: Pki,
    pub server_device: Device,
    pub client_device: Device,
    pub server: TlsServerContext,
    pub client: TlsClientContext,
}

impl Pair {
    pub fn new(server_pq: PqPolicy, client_pq: PqPolicy) -> Self {
        let pki = Pki::new("pair");
        let server_device = pki.device("gateway-1", TENANT);
        let client_device = pki.device("tablet-1", TENANT);
        let server = TlsServerContext::new(server_settings(&pki, &server_device, server_pq)).unwrap();
        let client = TlsClientContext::new(client_settings(&pki, &client_device, client_pq)).unwrap();
        Self { pki, server_device, client_device, server, client }
    }

    /// A fresh client session to the server device and server session, handshaken in memory.
    pub fn connect(&self) -> (TlsSession, TlsSession, Outcome) {
        let mut client = self.client.connect_to("gateway-1").unwrap();
        let mut server = self.server.accept().unwrap();
        let outcome = pump(&mut client, &mut server);
        (client, server, outcome)
    }
}

/// What each side of a pumped exchange ended with.
#[derive(Debug)]
pub struct Outcome {
    pub client: Result<(), TlsError>,
    pub server: Result<(), TlsError>,
}

/// Moves bytes both ways until neither side has anything to send. A side that fails stops
/// reading, but its last flight (the alert) is still delivered.
pub fn pump(client: &mut TlsSession, server: &mut TlsSession) -> Outcome {
    let mut outcome = Outcome { client: Ok(()), server: Ok(()) };
    for _ in 0..64 {
        let to_server = client.take_outgoing();
        let to_client = server.take_outgoing();
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
        if !to_server.is_empty() && outcome.server.is_ok() {
            outcome.server = server.read_tls(&to_server);
        }
        if !to_client.is_empty() && outcome.client.is_ok() {
            outcome.client = client.read_tls(&to_client);
        }
    }
    outcome
}
