//! The coordinator's state machine and operations.
//!
//! States: *accepting manifest* (fresh; the root CA exists so clients can verify the coordinator), *accepting
//! marbles* (a manifest is set), and *recovery* (the sealed state exists but its data key cannot be unsealed).
//!
//! Concurrency: one short mutex guards the live state; no operation holds it across quote verification, key
//! generation or I/O. An activation reads an immutable [`Snapshot`] (an `Arc`), reserves a slot against
//! `MaxActivations` under the mutex, does its slow work unlocked, and takes the mutex again only to record
//! the activation. Durability is group-committed: a background thread seals the state once per batch of
//! changes, appends their audit lines and writes the sealed state (the store's commit point); every caller
//! is answered only after the batch holding its change is durable. If a commit ever fails, the coordinator
//! stops answering (it cannot tell what is durable) and must be restarted from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arca_protocol::api::{SecretObject, UserSecret};
use arca_protocol::manifest::template::{Part, Target, Value as TValue, ValueRef};
use arca_protocol::manifest::{referenced_values, Action, ResourceType, SecretType};
use arca_protocol::{fingerprint, Manifest, PackageUpdate};
use base64::Engine as _;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::audit::{Chain, SignedHead};
use crate::crypto::{sha256, DataKey, RootSigner};
use crate::metrics::Metrics;
use crate::pki::{issue_marble_cert, Ca, MARBLE_O};
use crate::policy::{check_package, Enclave};
use crate::recovery::{self, Progress, Share};
use crate::seal::{KeySealer, RecoveryHeader, SealedFile};
use crate::secrets::{self, StoredSecret};
use crate::state::{PendingUpdate, Snapshot, State};
use crate::store::Store;
use crate::Error;

/// Settings of a coordinator instance.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Accept marbles whose quotes chain to the Arca simulation root (never in production).
    pub allow_simulation: bool,
}

/// MarbleRun's status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 1: the sealed state cannot be opened; waiting for recovery secrets.
    Recovery,
    /// 2: no manifest yet.
    AcceptingManifest,
    /// 3: a manifest is set; marbles may activate.
    AcceptingMarbles,
}

impl Status {
    /// The numeric code of the client API.
    pub fn code(self) -> i32 {
        match self {
            Status::Recovery => 1,
            Status::AcceptingManifest => 2,
            Status::AcceptingMarbles => 3,
        }
    }

    /// A sentence for people.
    pub fn message(self) -> &'static str {
        match self {
            Status::Recovery => {
                "recovery mode: the sealed state cannot be opened; upload recovery secrets (arca recover)"
            }
            Status::AcceptingManifest => "ready to accept a manifest (arca manifest set)",
            Status::AcceptingMarbles => "manifest set: accepting marbles",
        }
    }
}

/// An activation request, after its quote has been verified.
#[derive(Clone, Debug)]
pub struct ActivationRequest {
    /// The marble type (a key of `Marbles`).
    pub marble_type: String,
    /// The marble's UUID (RFC 4122 text).
    pub uuid: String,
    /// Names for the marble certificate (from the CSR).
    pub dns_names: Vec<String>,
}

/// What an activated marble receives.
#[derive(Clone)]
pub struct Activation {
    /// Rendered files by path.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Rendered environment.
    pub env: BTreeMap<String, Vec<u8>>,
    /// Arguments.
    pub argv: Vec<String>,
    /// PEM: marble certificate, then the intermediate CA.
    pub cert_chain_pem: String,
    /// PEM (PKCS#8) marble key.
    pub key_pem: Zeroizing<String>,
    /// PEM root CA.
    pub root_pem: String,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activation")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("argv", &self.argv)
            .finish_non_exhaustive()
    }
}

/// The manifest as the client API returns it.
#[derive(Clone, Debug)]
pub struct ManifestInfo {
    /// Exact bytes.
    pub raw: Vec<u8>,
    /// Hex SHA-256.
    pub fingerprint: String,
    /// ECDSA P-384/SHA-384 (DER) signature by the root key.
    pub signature: Vec<u8>,
}

/// A pending manifest update: its exact bytes and the users whose acknowledgement is missing.
pub type PendingInfo = (Vec<u8>, Vec<String>);

#[derive(Clone, Debug, Default)]
struct Durable {
    version: u64,
    poison: Option<String>,
}

struct Live {
    data_key: DataKey,
    sealed_data_key: Vec<u8>,
    state: State,
    root: Arc<Ca>,
    root_signer: Arc<RootSigner>,
    intermediate: Arc<Ca>,
    manifest: Option<Arc<Manifest>>,
    manifest_signature: Option<Vec<u8>>,
    snap: Arc<Snapshot>,
    reserved: BTreeMap<String, u64>,
    chain: Chain,
    pending_lines: Vec<String>,
    committed_chain: Chain,
    version: u64,
}

enum Phase {
    Recovery {
        file: Box<SealedFile>,
        progress: Progress,
    },
    Ready(Box<Live>),
}

struct Wake {
    requested: Mutex<u64>,
    cv: Condvar,
}

struct Inner {
    options: Options,
    store: Arc<dyn Store>,
    sealer: Arc<dyn KeySealer>,
    phase: Mutex<Phase>,
    durable: watch::Receiver<Durable>,
    wake: Arc<Wake>,
    metrics: Metrics,
}

/// The coordinator. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn now_text() -> String {
    now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn pem(label: &str, der: &[u8]) -> String {
    arca_protocol::manifest::template::pem_encode(label, der)
}

impl Coordinator {
    /// Opens (or creates) the coordinator's state in `store`. A fresh store gets a new root CA, intermediate
    /// CA, root secret and data key. A store whose data key `sealer` cannot unseal starts in recovery.
    pub fn open(
        store: Arc<dyn Store>,
        sealer: Arc<dyn KeySealer>,
        options: Options,
    ) -> Result<Coordinator, Error> {
        let phase = match store.load_state()? {
            None => Phase::Ready(Box::new(Coordinator::fresh(store.as_ref(), sealer.as_ref())?)),
            Some(bytes) => {
                let file = SealedFile::parse(&bytes)?;
                match sealer.unseal_key(&file.sealed_data_key()?) {
                    Some(key) => {
                        let plain = file.open(&key)?.ok_or_else(|| {
                            Error::Corrupt(
                                "the data key unsealed but does not open the state (damaged file?)".into(),
                            )
                        })?;
                        let sealed = sealer.seal_key(&key)?;
                        Phase::Ready(Box::new(Coordinator::load(store.as_ref(), key, sealed, &plain)?))
                    }
                    None => {
                        tracing::warn!(
                            "the sealed state's data key cannot be unsealed: entering recovery mode"
                        );
                        Phase::Recovery {
                            file: Box::new(file),
                            progress: Progress::default(),
                        }
                    }
                }
            }
        };
        let (tx, rx) = watch::channel(Durable::default());
        let wake = Arc::new(Wake {
            requested: Mutex::new(0),
            cv: Condvar::new(),
        });
        let inner = Arc::new(Inner {
            options,
            store,
            sealer,
            phase: Mutex::new(phase),
            durable: rx,
            wake: wake.clone(),
            metrics: Metrics::default(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("arca-commit".into())
            .spawn(move || committer(weak, wake, tx))
            .map_err(|e| Error::Server {
                step: "starting the commit thread",
                detail: e.to_string(),
            })?;
        let c = Coordinator { inner };
        {
            let mut ph = c.lock();
            if let Phase::Ready(live) = &mut *ph {
                if live.state.audit_len == 0 && live.version == 0 && live.state.manifest.is_none() {
                    // A fresh store: persist the new identity right away.
                    live.version = 1;
                }
            }
        }
        c.request_commit(1);
        Ok(c)
    }

    fn fresh(store: &dyn Store, sealer: &dyn KeySealer) -> Result<Live, Error> {
        store.open_audit(0)?;
        let t = now();
        let root = Ca::new_root(t)?;
        let intermediate = Ca::new_intermediate(&root, t)?;
        let key = DataKey::generate()?;
        let sealed = sealer.seal_key(&key)?;
        let state = State {
            root: root.to_stored(),
            intermediate: intermediate.to_stored(),
            previous_intermediates: Vec::new(),
            root_secret: crate::crypto::random_bytes(32)?,
            manifest: None,
            secrets: BTreeMap::new(),
            activations: BTreeMap::new(),
            security_versions: BTreeMap::new(),
            update_log: Vec::new(),
            pending: None,
            counters: BTreeMap::new(),
            audit_len: 0,
            audit_head: hex::encode(crate::audit::GENESIS),
            generation: 0,
            recovery: RecoveryHeader::default(),
        };
        Live::new(key, sealed, state, Vec::new())
    }

    fn load(store: &dyn Store, key: DataKey, sealed: Vec<u8>, plain: &[u8]) -> Result<Live, Error> {
        let state: State = serde_json::from_slice(plain)
            .map_err(|e| Error::Corrupt(format!("the decrypted state is not valid: {e}")))?;
        let lines = store.open_audit(state.audit_len)?;
        let report = crate::audit::verify_log(&lines, None)?;
        if report.head != state.audit_head {
            return Err(Error::AuditTampered(format!(
                "the audit log's last hash {} differs from the sealed state's {}: entries were edited",
                report.head, state.audit_head
            )));
        }
        Live::new(key, sealed, state, lines)
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.inner.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live<'a>(ph: &'a mut MutexGuard<'_, Phase>) -> Result<&'a mut Live, Error> {
        match &mut **ph {
            Phase::Ready(live) => Ok(live),
            Phase::Recovery { .. } => Err(Error::WrongState(Status::Recovery.message().into())),
        }
    }

    fn check_poison(&self) -> Result<(), Error> {
        match &self.inner.durable.borrow().poison {
            Some(p) => Err(Error::Poisoned(p.clone())),
            None => Ok(()),
        }
    }

    fn request_commit(&self, version: u64) {
        let mut r = self
            .inner
            .wake
            .requested
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if version > *r {
            *r = version;
        }
        self.inner.wake.cv.notify_one();
    }

    /// Waits until the change numbered `version` is durable.
    async fn durable(&self, version: u64) -> Result<(), Error> {
        self.request_commit(version);
        let mut rx = self.inner.durable.clone();
        let d = rx
            .wait_for(|d| d.version >= version || d.poison.is_some())
            .await
            .map_err(|_| Error::Poisoned("the commit thread stopped".into()))?;
        match &d.poison {
            Some(p) if d.version < version => Err(Error::Poisoned(p.clone())),
            _ => Ok(()),
        }
    }

    /// Records a change (already applied to `live.state`) with its audit entry; returns its version.
    fn record(live: &mut Live, audit: Option<(&str, &str, &str, serde_json::Value)>) -> Result<u64, Error> {
        if let Some((event, actor, subject, detail)) = audit {
            let line = live.chain.append(event, actor, subject, detail)?;
            live.pending_lines.push(line);
            live.state.audit_len = live.chain.len;
            live.state.audit_head = hex::encode(live.chain.head);
        }
        live.version += 1;
        Ok(live.version)
    }

    /// The current state.
    pub fn status(&self) -> Status {
        match &*self.lock() {
            Phase::Recovery { .. } => Status::Recovery,
            Phase::Ready(l) if l.manifest.is_some() => Status::AcceptingMarbles,
            Phase::Ready(_) => Status::AcceptingManifest,
        }
    }

    /// The metrics registry's text exposition.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }

    /// The options the coordinator runs with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Root and intermediate CA certificates (DER).
    pub fn ca_certs(&self) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        Ok((live.root.cert_der.clone(), live.intermediate.cert_der.clone()))
    }

    pub(crate) fn intermediate(&self) -> Result<Arc<Ca>, Error> {
        let mut ph = self.lock();
        Ok(Coordinator::live(&mut ph)?.intermediate.clone())
    }

    /// Signs `msg` with the root key (ECDSA P-384, SHA-384, DER).
    pub fn sign_with_root(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let signer = {
            let mut ph = self.lock();
            Coordinator::live(&mut ph)?.root_signer.clone()
        };
        signer.sign(msg)
    }

    /// The manifest, its fingerprint and its signature by the root key.
    pub fn manifest(&self) -> Result<ManifestInfo, Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        let raw = live
            .state
            .manifest
            .as_ref()
            .ok_or_else(|| Error::NotFound("no manifest is set".into()))?
            .to_vec();
        let signature = match &live.manifest_signature {
            Some(s) => s.clone(),
            None => {
                let s = live.root_signer.sign(&raw)?;
                live.manifest_signature = Some(s.clone());
                s
            }
        };
        Ok(ManifestInfo {
            fingerprint: fingerprint(&raw),
            raw,
            signature,
        })
    }

    /// The effective minimum SecurityVersion of each package (manifest value raised by updates).
    pub fn security_versions(&self) -> Result<BTreeMap<String, Option<u16>>, Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        let snap = live.snap.clone();
        Ok(snap
            .manifest
            .as_ref()
            .map(|m| m.packages.keys().map(|p| (p.clone(), snap.min_svn(p))).collect())
            .unwrap_or_default())
    }

    /// Sets the first manifest. Returns the recovery secrets (RSA-OAEP ciphertexts) per recovery key.
    /// `actor` names who set it (a user name, or `anonymous`).
    pub async fn set_manifest(&self, raw: &[u8], actor: &str) -> Result<BTreeMap<String, Vec<u8>>, Error> {
        self.check_poison()?;
        let manifest = Arc::new(Manifest::parse(raw)?);
        let (root, data_key) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            if live.manifest.is_some() {
                return Err(Error::WrongState(
                    "a manifest is already set; change it with an update (arca manifest update)".into(),
                ));
            }
            (live.root.clone(), live.data_key.clone())
        };
        // Slow work (key generation, RSA encryption) without the lock.
        let t = now();
        let mut values = BTreeMap::new();
        for (name, spec) in &manifest.secrets {
            values.insert(name.clone(), secrets::initial_value(spec, &root, t)?);
        }
        let recovery_secrets = recovery::make_secrets(
            &manifest.recovery_keys,
            manifest.config.recovery_threshold,
            &data_key,
        )?;
        let header = recovery_header(&manifest);
        let fp = fingerprint(raw);
        let version = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            if live.manifest.is_some() {
                return Err(Error::WrongState("a manifest was set concurrently".into()));
            }
            live.state.manifest = Some(Zeroizing::new(raw.to_vec()));
            live.state.secrets = values;
            live.state.recovery = header;
            live.state.update_log.push(update_log_line(
                "manifest-set",
                actor,
                json!({ "fingerprint": fp }),
            ));
            live.state.generation += 1;
            live.manifest = Some(manifest);
            live.manifest_signature = None;
            live.rebuild_snapshot();
            Coordinator::record(
                live,
                Some(("manifest-set", actor, &fp, json!({ "fingerprint": fp }))),
            )?
        };
        self.durable(version).await?;
        Ok(recovery_secrets)
    }

    /// Activates a marble whose quote has been verified (`enclave`): checks the package policy and
    /// `MaxActivations`, issues its certificate, derives its secrets and renders its parameters. The
    /// activation is durable (and audited) when this returns.
    pub async fn activate(&self, req: &ActivationRequest, enclave: &Enclave) -> Result<Activation, Error> {
        self.activate_then_release(req, enclave, ()).await
    }

    /// [`Coordinator::activate`], dropping `turn` once the activation is recorded, before waiting for the
    /// group commit (so a slow commit does not keep the turn from the next activation's CPU work).
    pub(crate) async fn activate_then_release<T: Send>(
        &self,
        req: &ActivationRequest,
        enclave: &Enclave,
        turn: T,
    ) -> Result<Activation, Error> {
        let started = Instant::now();
        let result = self.activate_inner(req, enclave, turn).await;
        self.inner.metrics.activation(result.is_ok(), started.elapsed());
        if let Err(e) = &result {
            tracing::info!(marble_type = %req.marble_type, uuid = %req.uuid, "activation refused: {e}");
        }
        result
    }

    async fn activate_inner<T: Send>(
        &self,
        req: &ActivationRequest,
        enclave: &Enclave,
        turn: T,
    ) -> Result<Activation, Error> {
        self.check_poison()?;
        if enclave.simulated && !self.inner.options.allow_simulation {
            return Err(Error::Refused(
                "simulated quote refused: this coordinator was not started with --allow-simulation, and \
                 simulated enclaves give no hardware protection"
                    .into(),
            ));
        }
        check_uuid(&req.uuid)?;
        let marble_type = req.marble_type.as_str();
        // 1. Snapshot and reservation, under the lock (no crypto).
        let (snap, reservation) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let manifest = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set; marbles cannot activate yet".into()))?;
            let marble = manifest.marbles.get(marble_type).ok_or_else(|| {
                Error::Refused(format!(
                    "unknown marble type {marble_type:?}: not in the manifest"
                ))
            })?;
            if marble.max_activations > 0 {
                let done = live.state.activations.get(marble_type).copied().unwrap_or(0);
                let pending = live.reserved.get(marble_type).copied().unwrap_or(0);
                if done + pending >= marble.max_activations {
                    return Err(Error::Refused(format!(
                        "marble type {marble_type:?} reached its MaxActivations ({})",
                        marble.max_activations
                    )));
                }
            }
            *live.reserved.entry(marble_type.to_owned()).or_default() += 1;
            (
                live.snap.clone(),
                Reservation {
                    coordinator: self,
                    marble_type: marble_type.to_owned(),
                    live: true,
                },
            )
        };
        let manifest = snap
            .manifest
            .clone()
            .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
        let marble = manifest
            .marbles
            .get(marble_type)
            .ok_or_else(|| Error::Refused(format!("unknown marble type {marble_type:?}")))?;
        let pkg = manifest
            .packages
            .get(&marble.package)
            .ok_or_else(|| Error::Corrupt(format!("package {:?} vanished", marble.package)))?;
        // 2. Policy, key generation and rendering: no lock.
        check_package(&marble.package, pkg, snap.min_svn(&marble.package), enclave)?;
        let t = now();
        let mc = issue_marble_cert(&snap.intermediate, &req.uuid, marble_type, &req.dns_names, t)?;
        let values = marble_values(&snap, &manifest, marble_type, &req.uuid, &mc, t)?;
        let resolve = |r: &ValueRef| -> Result<TValue<'_>, String> {
            values
                .get(r)
                .map(|(kind, bytes)| kind.value(bytes))
                .ok_or_else(|| format!("{r} is not available"))
        };
        let mut files = BTreeMap::new();
        for (path, e) in &marble.parameters.files {
            let v = e
                .render(Target::File, resolve)
                .map_err(|err| Error::Refused(format!("rendering file {path:?}: {err}")))?;
            files.insert(path.clone(), v);
        }
        let mut env = BTreeMap::new();
        for (name, e) in &marble.parameters.env {
            let v = e
                .render(Target::Env, resolve)
                .map_err(|err| Error::Refused(format!("rendering environment variable {name}: {err}")))?;
            env.insert(name.clone(), v);
        }
        let root_pem = pem("CERTIFICATE", &snap.root_cert);
        let cert_chain_pem =
            pem("CERTIFICATE", &mc.cert_der) + &pem("CERTIFICATE", &snap.intermediate.cert_der);
        let key_pem = Zeroizing::new(pem("PRIVATE KEY", &mc.key_pkcs8));
        use arca_protocol::activation::env as menv;
        env.entry(menv::ROOT_CA.into())
            .or_insert_with(|| root_pem.clone().into_bytes());
        env.entry(menv::MARBLE_CERTIFICATE_CHAIN.into())
            .or_insert_with(|| cert_chain_pem.clone().into_bytes());
        env.entry(menv::PRIVATE_KEY.into())
            .or_insert_with(|| key_pem.as_bytes().to_vec());
        // 3. Record, under the lock; re-check the policy if an update happened meanwhile.
        let version = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            if live.snap.generation != snap.generation {
                let now_snap = live.snap.clone();
                let m = now_snap
                    .manifest
                    .as_ref()
                    .ok_or_else(|| Error::WrongState("the manifest changed".into()))?;
                let marble = m.marbles.get(marble_type).ok_or_else(|| {
                    Error::Refused(format!("marble type {marble_type:?} was removed by an update"))
                })?;
                let pkg = m
                    .packages
                    .get(&marble.package)
                    .ok_or_else(|| Error::Refused("package removed".into()))?;
                check_package(&marble.package, pkg, now_snap.min_svn(&marble.package), enclave)?;
                if now_snap.intermediate.cert_der != snap.intermediate.cert_der {
                    return Err(Error::Refused(
                        "the coordinator rotated its intermediate CA meanwhile; retry".into(),
                    ));
                }
            }
            reservation.consume(live);
            *live.state.activations.entry(marble_type.to_owned()).or_default() += 1;
            let detail = json!({
                "package": marble.package,
                "mrenclave": hex::encode(enclave.mrenclave),
                "mrsigner": hex::encode(enclave.mrsigner),
                "svn": enclave.isv_svn,
                "tcbStatus": enclave.tcb_status,
                "simulated": enclave.simulated,
            });
            Coordinator::record(
                live,
                Some(("activation", &format!("marble:{marble_type}"), &req.uuid, detail)),
            )?
        };
        drop(turn);
        self.durable(version).await?;
        Ok(Activation {
            files,
            env,
            argv: marble.parameters.argv.clone(),
            cert_chain_pem,
            key_pem,
            root_pem,
        })
    }

    /// Identifies the user presenting `client_cert` (DER) under the current manifest.
    pub fn user_of(&self, client_cert: Option<&[u8]>) -> Result<String, Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        let m = live
            .manifest
            .clone()
            .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
        user_in(&m, client_cert)
    }

    /// Reads shared or user-defined secrets for `user` (needs `ReadSecret` on each). Audited.
    pub async fn read_secrets(
        &self,
        client_cert: Option<&[u8]>,
        names: &[String],
    ) -> Result<BTreeMap<String, SecretObject>, Error> {
        self.check_poison()?;
        if names.is_empty() {
            return Err(Error::BadRequest("name at least one secret (?s=NAME)".into()));
        }
        let (out, version) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let m = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
            let user = user_in(&m, client_cert)?;
            let mut out = BTreeMap::new();
            for n in names {
                let spec = m
                    .secrets
                    .get(n)
                    .ok_or_else(|| Error::NotFound(format!("no secret named {n:?}")))?;
                require(&m, &user, ResourceType::Secrets, n, Action::ReadSecret)?;
                let value = live
                    .state
                    .secrets
                    .get(n)
                    .ok_or_else(|| Error::NotFound(format!("secret {n:?}")))?;
                match value {
                    StoredSecret::PerMarble => {
                        return Err(Error::BadRequest(format!(
                            "secret {n:?} is not shared: each marble has its own value"
                        )))
                    }
                    StoredSecret::Unset => {
                        return Err(Error::NotFound(format!("secret {n:?} has not been set yet")))
                    }
                    v => out.insert(n.clone(), secrets::to_object(spec, v)),
                };
            }
            let subject = names.join(",");
            let v = Coordinator::record(live, Some(("secret-read", &user, &subject, json!({}))))?;
            (out, v)
        };
        self.durable(version).await?;
        Ok(out)
    }

    /// Sets user-defined secrets (needs `WriteSecret` on each). Audited and logged as an update.
    pub async fn write_secrets(
        &self,
        client_cert: Option<&[u8]>,
        values: &BTreeMap<String, UserSecret>,
    ) -> Result<(), Error> {
        self.check_poison()?;
        if values.is_empty() {
            return Err(Error::BadRequest("no secret given".into()));
        }
        let version = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let m = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
            let user = user_in(&m, client_cert)?;
            let mut parsed = BTreeMap::new();
            for (n, v) in values {
                let spec = m
                    .secrets
                    .get(n)
                    .ok_or_else(|| Error::NotFound(format!("no secret named {n:?}")))?;
                require(&m, &user, ResourceType::Secrets, n, Action::WriteSecret)?;
                parsed.insert(n.clone(), secrets::from_user(n, spec, v)?);
            }
            let names: Vec<&String> = parsed.keys().collect();
            let subject = names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
            live.state
                .update_log
                .push(update_log_line("secrets-set", &user, json!({ "secrets": names })));
            live.state.secrets.extend(parsed);
            live.state.generation += 1;
            live.rebuild_snapshot();
            Coordinator::record(live, Some(("secret-write", &user, &subject, json!({}))))?
        };
        self.durable(version).await
    }

    /// Applies a package update (`{"Packages": {"name": {"SecurityVersion": N}}}`): the user needs
    /// `UpdateSecurityVersion` on each package, and each version must rise. Rotates the intermediate CA.
    pub async fn update_packages(&self, client_cert: Option<&[u8]>, raw: &[u8]) -> Result<(), Error> {
        self.check_poison()?;
        let update = PackageUpdate::parse(raw)?;
        let root = {
            let mut ph = self.lock();
            Coordinator::live(&mut ph)?.root.clone()
        };
        let new_intermediate = Arc::new(Ca::new_intermediate(&root, now())?);
        let version = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let m = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
            let user = user_in(&m, client_cert)?;
            for (pkg, svn) in &update.security_versions {
                if !m.packages.contains_key(pkg) {
                    return Err(Error::NotFound(format!(
                        "no package named {pkg:?} in the manifest"
                    )));
                }
                require(
                    &m,
                    &user,
                    ResourceType::Packages,
                    pkg,
                    Action::UpdateSecurityVersion,
                )?;
                let current = live.snap.min_svn(pkg).unwrap_or(0);
                if *svn <= current {
                    return Err(Error::BadRequest(format!(
                        "package {pkg:?}: SecurityVersion {svn} does not raise the current {current}"
                    )));
                }
            }
            for (pkg, svn) in &update.security_versions {
                live.state.security_versions.insert(pkg.clone(), *svn);
            }
            let detail = json!({ "packages": update.security_versions });
            live.state
                .update_log
                .push(update_log_line("package-update", &user, detail.clone()));
            live.rotate_intermediate(new_intermediate);
            let subject = update
                .security_versions
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(",");
            Coordinator::record(live, Some(("package-update", &user, &subject, detail)))?
        };
        self.durable(version).await
    }

    /// Proposes or acknowledges a full manifest update (needs `UpdateManifest`). When enough users have
    /// acknowledged (`Config.UpdateThreshold`, or all of them), it is applied. Returns the users still
    /// missing (empty once applied).
    pub async fn update_manifest(
        &self,
        client_cert: Option<&[u8]>,
        raw: &[u8],
    ) -> Result<Vec<String>, Error> {
        self.check_poison()?;
        let new = Arc::new(Manifest::parse(raw)?);
        let (root, old_state_secrets) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            (live.root.clone(), live.state.secrets.clone())
        };
        // Generate what the new manifest needs ahead (unlocked); unused if the update is not applied yet.
        let t = now();
        let new_intermediate = Arc::new(Ca::new_intermediate(&root, t)?);
        let (missing, version) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let m = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
            let user = user_in(&m, client_cert)?;
            require(&m, &user, ResourceType::Manifest, "", Action::UpdateManifest)?;
            let fp = fingerprint(raw);
            let pending = match &mut live.state.pending {
                Some(p) if p.manifest != raw => {
                    return Err(Error::WrongState(format!(
                        "another manifest update ({}) is pending; acknowledge it or cancel it first",
                        fingerprint(&p.manifest)
                    )))
                }
                Some(p) => p,
                None => live.state.pending.insert(PendingUpdate {
                    manifest: raw.to_vec(),
                    acks: BTreeSet::new(),
                }),
            };
            let first = pending.acks.is_empty();
            pending.acks.insert(user.clone());
            let acks = pending.acks.clone();
            let updaters = m.users_permitted(ResourceType::Manifest, "", Action::UpdateManifest);
            let needed = if m.config.update_threshold == 0 {
                updaters.len()
            } else {
                m.config.update_threshold as usize
            };
            let missing: Vec<String> = updaters.iter().filter(|u| !acks.contains(*u)).cloned().collect();
            let event = if first {
                "manifest-update-proposed"
            } else {
                "manifest-update-acknowledged"
            };
            let v = Coordinator::record(live, Some((event, &user, &fp, json!({ "acknowledged": acks }))))?;
            if acks.len() >= needed {
                // Apply: keep secrets whose definition is unchanged, generate the others.
                let mut values = BTreeMap::new();
                for (name, spec) in &new.secrets {
                    let keep = m.secrets.get(name) == Some(spec);
                    let value = match (keep, old_state_secrets.get(name)) {
                        (true, Some(v)) => v.clone(),
                        _ => secrets::initial_value(spec, &root, t)?,
                    };
                    values.insert(name.clone(), value);
                }
                live.state.manifest = Some(Zeroizing::new(raw.to_vec()));
                live.state.secrets = values;
                live.state.security_versions.clear();
                live.state.pending = None;
                live.state.recovery = recovery_header(&new);
                live.state.update_log.push(update_log_line(
                    "manifest-update",
                    &user,
                    json!({ "fingerprint": fp, "acknowledged": acks }),
                ));
                live.manifest = Some(new);
                live.manifest_signature = None;
                live.rotate_intermediate(new_intermediate);
                let v = Coordinator::record(live, Some(("manifest-update-applied", &user, &fp, json!({}))))?;
                (Vec::new(), v)
            } else {
                (missing, v)
            }
        };
        self.durable(version).await?;
        Ok(missing)
    }

    /// The pending manifest update: its bytes and the users whose acknowledgement is missing.
    pub fn pending_update(&self) -> Result<Option<PendingInfo>, Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        let Some(p) = &live.state.pending else {
            return Ok(None);
        };
        let m = live
            .manifest
            .clone()
            .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
        let missing = m
            .users_permitted(ResourceType::Manifest, "", Action::UpdateManifest)
            .into_iter()
            .filter(|u| !p.acks.contains(u))
            .collect();
        Ok(Some((p.manifest.clone(), missing)))
    }

    /// Cancels the pending manifest update (needs `UpdateManifest`).
    pub async fn cancel_update(&self, client_cert: Option<&[u8]>) -> Result<(), Error> {
        self.check_poison()?;
        let version = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let m = live
                .manifest
                .clone()
                .ok_or_else(|| Error::WrongState("no manifest is set".into()))?;
            let user = user_in(&m, client_cert)?;
            require(&m, &user, ResourceType::Manifest, "", Action::UpdateManifest)?;
            let p = live
                .state
                .pending
                .take()
                .ok_or_else(|| Error::NotFound("no manifest update is pending".into()))?;
            let fp = fingerprint(&p.manifest);
            Coordinator::record(live, Some(("manifest-update-cancelled", &user, &fp, json!({}))))?
        };
        self.durable(version).await
    }

    /// The update log: one JSON document per update.
    pub fn update_log(&self) -> Result<Vec<String>, Error> {
        let mut ph = self.lock();
        Ok(Coordinator::live(&mut ph)?.state.update_log.clone())
    }

    /// Committed audit lines from index `from`, and the signed head of the committed log.
    pub fn audit(&self, from: u64) -> Result<(Vec<String>, SignedHead), Error> {
        let (chain, signer) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            (live.committed_chain.clone(), live.root_signer.clone())
        };
        let lines = self.inner.store.read_audit(from, chain.len)?;
        Ok((lines, SignedHead::sign(&chain, &signer)?))
    }

    /// Raises the monotonic counter `name` of the marble presenting `marble_cert` (issued by this
    /// coordinator) to at least `value`; returns the previous value. Durable before it returns.
    pub async fn set_counter(&self, marble_cert: &[u8], name: &str, value: u64) -> Result<u64, Error> {
        self.check_poison()?;
        if name.is_empty() || name.len() > 256 {
            return Err(Error::BadRequest("a counter name has 1 to 256 bytes".into()));
        }
        let (marble_type, intermediates) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let mut keys = vec![live.intermediate.public_key_der()];
            for k in &live.state.previous_intermediates {
                keys.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .unwrap_or_default(),
                );
            }
            (marble_type_of(marble_cert)?, keys)
        };
        verify_issued_by_any(marble_cert, &intermediates)?;
        let (previous, version) = {
            let mut ph = self.lock();
            let live = Coordinator::live(&mut ph)?;
            let slot = live
                .state
                .counters
                .entry(marble_type)
                .or_default()
                .entry(name.to_owned())
                .or_insert(0);
            let previous = *slot;
            if value <= previous {
                return Ok(previous);
            }
            *slot = value;
            (previous, Coordinator::record(live, None)?)
        };
        self.durable(version).await?;
        Ok(previous)
    }

    /// All monotonic counters: marble type → name → value.
    pub fn counters(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>, Error> {
        let mut ph = self.lock();
        Ok(Coordinator::live(&mut ph)?.state.counters.clone())
    }

    /// Committed activations per marble type.
    pub fn activations(&self) -> Result<BTreeMap<String, u64>, Error> {
        let mut ph = self.lock();
        Ok(Coordinator::live(&mut ph)?.state.activations.clone())
    }

    /// A shared secret's raw value (for tests and the embedded coordinator): key bytes, or certificate DER.
    pub fn shared_secret_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut ph = self.lock();
        let live = Coordinator::live(&mut ph)?;
        Ok(match live.state.secrets.get(name) {
            Some(StoredSecret::Bytes { value }) => Some(value.to_vec()),
            Some(StoredSecret::Cert { cert, .. }) => Some(cert.clone()),
            _ => None,
        })
    }

    /// Recovery: adds a decrypted recovery secret (and optionally its RSA-PSS signature by the recovery key).
    /// Returns how many secrets are still missing (0: recovered, the coordinator is running again).
    pub async fn recover(&self, secret: &[u8], signature: Option<&[u8]>) -> Result<u32, Error> {
        let share = Share::parse(secret)?;
        let version = {
            let mut ph = self.lock();
            let Phase::Recovery { file, progress } = &mut *ph else {
                return Err(Error::WrongState(
                    "the coordinator is not in recovery mode".into(),
                ));
            };
            let keys = &file.recovery.keys;
            if keys.is_empty() {
                return Err(Error::WrongState(
                    "the manifest had no RecoveryKeys: this state cannot be recovered".into(),
                ));
            }
            let (key_name, spki) = keys
                .get(share.index as usize)
                .ok_or_else(|| Error::BadRequest("recovery secret for an unknown key".into()))?;
            if let Some(sig) = signature {
                let spki = base64::engine::general_purpose::STANDARD
                    .decode(spki)
                    .unwrap_or_default();
                if !crate::crypto::rsa_pss_verify(&spki, secret, sig) {
                    return Err(Error::Unauthenticated(format!(
                        "the recovery secret's signature does not verify under recovery key {key_name:?}"
                    )));
                }
            }
            let key = match progress.add(share)? {
                Err(missing) => return Ok(u32::from(missing)),
                Ok(key) => key,
            };
            let Some(plain) = file.open(&key)? else {
                progress.reset();
                return Err(Error::BadRequest(
                    "the recovery secrets do not open the sealed state; upload them again".into(),
                ));
            };
            let sealed = self.inner.sealer.seal_key(&key)?;
            let mut live = Coordinator::load(self.inner.store.as_ref(), key, sealed, &plain)?;
            let v = Coordinator::record(
                &mut live,
                Some((
                    "recovery",
                    "coordinator",
                    "",
                    json!({ "sealer": self.inner.sealer.describe() }),
                )),
            )?;
            *ph = Phase::Ready(live.into());
            v
        };
        self.durable(version).await?;
        Ok(0)
    }
}

impl Live {
    fn new(
        data_key: DataKey,
        sealed_data_key: Vec<u8>,
        state: State,
        lines: Vec<String>,
    ) -> Result<Live, Error> {
        let root = Arc::new(Ca::from_stored(&state.root)?);
        let intermediate = Arc::new(Ca::from_stored(&state.intermediate)?);
        let root_signer = Arc::new(root.root_signer()?);
        let manifest = match &state.manifest {
            Some(raw) => Some(Arc::new(Manifest::parse(raw)?)),
            None => None,
        };
        let mut chain = Chain::new();
        chain.len = lines.len() as u64;
        if let Some(last) = lines.last() {
            chain.head = sha256(&[last.as_bytes()]);
        }
        let mut live = Live {
            data_key,
            sealed_data_key,
            root,
            root_signer,
            intermediate,
            manifest,
            manifest_signature: None,
            snap: Arc::new(Snapshot {
                generation: 0,
                manifest: None,
                intermediate: Arc::new(Ca::from_stored(&state.intermediate)?),
                root_cert: Arc::new(Vec::new()),
                root: Arc::new(Ca::from_stored(&state.root)?),
                root_secret: Zeroizing::new(Vec::new()),
                secrets: BTreeMap::new(),
                security_versions: BTreeMap::new(),
            }),
            state,
            reserved: BTreeMap::new(),
            committed_chain: chain.clone(),
            chain,
            pending_lines: Vec::new(),
            version: 0,
        };
        live.rebuild_snapshot();
        Ok(live)
    }

    fn rebuild_snapshot(&mut self) {
        self.snap = Arc::new(Snapshot {
            generation: self.state.generation,
            manifest: self.manifest.clone(),
            intermediate: self.intermediate.clone(),
            root_cert: Arc::new(self.root.cert_der.clone()),
            root: self.root.clone(),
            root_secret: self.state.root_secret.clone(),
            secrets: self.state.secrets.clone(),
            security_versions: self.state.security_versions.clone(),
        });
    }

    fn rotate_intermediate(&mut self, new: Arc<Ca>) {
        let old = b64(&self.intermediate.public_key_der());
        self.state.previous_intermediates.push(old);
        let excess = self.state.previous_intermediates.len().saturating_sub(16);
        self.state.previous_intermediates.drain(..excess);
        self.state.intermediate = new.to_stored();
        self.intermediate = new;
        self.state.generation += 1;
        self.rebuild_snapshot();
    }
}

/// Releases a `MaxActivations` reservation unless the activation was recorded.
struct Reservation<'a> {
    coordinator: &'a Coordinator,
    marble_type: String,
    live: bool,
}

impl Reservation<'_> {
    fn consume(mut self, live: &mut Live) {
        if let Some(n) = live.reserved.get_mut(&self.marble_type) {
            *n = n.saturating_sub(1);
        }
        self.live = false;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.live {
            if let Ok(mut ph) = self.coordinator.inner.phase.lock() {
                if let Phase::Ready(live) = &mut *ph {
                    if let Some(n) = live.reserved.get_mut(&self.marble_type) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum VKind {
    Bytes,
    Cert,
    Public,
    Private,
}

impl VKind {
    fn value(self, b: &[u8]) -> TValue<'_> {
        match self {
            VKind::Bytes => TValue::Bytes(b),
            VKind::Cert => TValue::Cert(b),
            VKind::Public => TValue::PublicKey(b),
            VKind::Private => TValue::PrivateKey(b),
        }
    }
}

/// Resolves every value the marble's templates name.
fn marble_values(
    snap: &Snapshot,
    manifest: &Manifest,
    marble_type: &str,
    uuid: &str,
    mc: &crate::pki::MarbleCert,
    t: OffsetDateTime,
) -> Result<BTreeMap<ValueRef, (VKind, Vec<u8>)>, Error> {
    let mut out = BTreeMap::new();
    let Some(marble) = manifest.marbles.get(marble_type) else {
        return Ok(out);
    };
    let mut per_marble_certs: BTreeMap<String, (Vec<u8>, Zeroizing<Vec<u8>>)> = BTreeMap::new();
    for r in referenced_values(marble) {
        let v = match &r {
            ValueRef::RootCa(Part::Public) => (VKind::Public, snap.root.public_key_der()),
            ValueRef::RootCa(_) => (VKind::Cert, snap.root_cert.to_vec()),
            ValueRef::IntermediateCa(Part::Public) => (VKind::Public, snap.intermediate.public_key_der()),
            ValueRef::IntermediateCa(_) => (VKind::Cert, snap.intermediate.cert_der.clone()),
            ValueRef::MarbleCert(Part::Cert) => (VKind::Cert, mc.cert_der.clone()),
            ValueRef::MarbleCert(Part::Private) => (VKind::Private, mc.key_pkcs8.to_vec()),
            ValueRef::MarbleCert(_) => (VKind::Public, mc.public_der.clone()),
            ValueRef::SealKey => (
                VKind::Bytes,
                secrets::seal_key(&snap.root_secret, marble_type)?.to_vec(),
            ),
            ValueRef::Secret { name, part } => {
                let spec = manifest
                    .secrets
                    .get(name)
                    .ok_or_else(|| Error::Corrupt(format!("secret {name:?} vanished")))?;
                let stored = snap.secrets.get(name).cloned().unwrap_or(StoredSecret::Unset);
                let (cert, private): (Vec<u8>, Option<Zeroizing<Vec<u8>>>) = match stored {
                    StoredSecret::Unset => {
                        return Err(Error::Refused(format!(
                            "user-defined secret {name:?} has not been set yet (a user sets it with arca secret set)"
                        )))
                    }
                    StoredSecret::Bytes { value } => {
                        out.insert(r.clone(), (VKind::Bytes, value.to_vec()));
                        continue;
                    }
                    StoredSecret::PerMarble if spec.kind == SecretType::SymmetricKey => {
                        let k = secrets::derive_symmetric(&snap.root_secret, uuid, name, marble_type, spec.size)?;
                        out.insert(r.clone(), (VKind::Bytes, k.to_vec()));
                        continue;
                    }
                    StoredSecret::PerMarble => {
                        if !per_marble_certs.contains_key(name) {
                            per_marble_certs.insert(name.clone(), secrets::cert_secret(spec, &snap.root, t)?);
                        }
                        let (c, k) = &per_marble_certs[name];
                        (c.clone(), Some(k.clone()))
                    }
                    StoredSecret::Cert { cert, private } => (cert, private),
                };
                match part {
                    Part::Cert => (VKind::Cert, cert),
                    Part::Private => (
                        VKind::Private,
                        private
                            .ok_or_else(|| Error::Refused(format!("secret {name:?} has no private key")))?
                            .to_vec(),
                    ),
                    Part::Public | Part::Default => {
                        (VKind::Public, crate::pki::spki_of(&cert).unwrap_or_default())
                    }
                }
            }
        };
        out.insert(r, v);
    }
    Ok(out)
}

fn check_uuid(uuid: &str) -> Result<(), Error> {
    let ok = uuid.len() == 36
        && uuid.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "{uuid:?} is not a UUID (8-4-4-4-12 hex digits)"
        )))
    }
}

fn user_in(m: &Manifest, client_cert: Option<&[u8]>) -> Result<String, Error> {
    let cert = client_cert.ok_or_else(|| {
        Error::Unauthenticated("this call needs a user's client certificate (--cert/--key)".into())
    })?;
    m.users
        .iter()
        .find(|(_, u)| u.certificate_der == cert)
        .map(|(n, _)| n.clone())
        .ok_or_else(|| {
            Error::Unauthenticated("the client certificate belongs to no user of the manifest".into())
        })
}

fn require(m: &Manifest, user: &str, rt: ResourceType, name: &str, action: Action) -> Result<(), Error> {
    if m.users_permitted(rt, name, action).iter().any(|u| u == user) {
        Ok(())
    } else {
        let what = if rt == ResourceType::Manifest {
            "the manifest".to_owned()
        } else {
            format!("{name:?}")
        };
        Err(Error::Forbidden(format!(
            "user {user:?} has no role allowing {} on {what}",
            action.as_str()
        )))
    }
}

fn update_log_line(update: &str, user: &str, detail: serde_json::Value) -> String {
    json!({ "time": now_text(), "update": update, "user": user, "detail": detail }).to_string()
}

fn recovery_header(m: &Manifest) -> RecoveryHeader {
    RecoveryHeader {
        threshold: recovery::threshold(m.recovery_keys.len(), m.config.recovery_threshold),
        keys: m
            .recovery_keys
            .iter()
            .map(|(n, k)| (n.clone(), b64(&k.spki_der)))
            .collect(),
    }
}

/// The marble type (OU) of a marble certificate issued by this coordinator.
fn marble_type_of(cert: &[u8]) -> Result<String, Error> {
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| Error::Unauthenticated(format!("the client certificate is not X.509: {e}")))?;
    let o = c
        .subject()
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    if o != Some(MARBLE_O) {
        return Err(Error::Unauthenticated(
            "the client certificate is not a marble certificate".into(),
        ));
    }
    let ou = c
        .subject()
        .iter_organizational_unit()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    ou.ok_or_else(|| Error::Unauthenticated("the marble certificate names no marble type".into()))
}

fn verify_issued_by_any(cert: &[u8], issuer_spkis: &[Vec<u8>]) -> Result<(), Error> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| Error::Unauthenticated(format!("the client certificate is not X.509: {e}")))?;
    for spki in issuer_spkis {
        if let Ok((_, key)) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki) {
            if c.verify_signature(Some(&key)).is_ok() {
                return Ok(());
            }
        }
    }
    Err(Error::Unauthenticated(
        "the marble certificate was not issued by this coordinator".into(),
    ))
}

/// The group-commit loop: seals the state once per batch of changes.
fn committer(inner: Weak<Inner>, wake: Arc<Wake>, tx: watch::Sender<Durable>) {
    let mut durable = 0u64;
    let mut handled = 0u64;
    loop {
        {
            let r = wake.requested.lock().unwrap_or_else(|p| p.into_inner());
            let r = wake
                .cv
                .wait_timeout_while(r, Duration::from_millis(200), |r| *r <= handled)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
            handled = handled.max(*r);
        }
        let Some(inner) = inner.upgrade() else { return };
        let batch = {
            let mut ph = inner.phase.lock().unwrap_or_else(|p| p.into_inner());
            match &mut *ph {
                Phase::Ready(live) if live.version > durable => {
                    let plain = serde_json::to_vec(&live.state);
                    let lines = std::mem::take(&mut live.pending_lines);
                    let base = live.chain.len - lines.len() as u64;
                    let chain = live.chain.clone();
                    Some((
                        live.version,
                        plain,
                        lines,
                        base,
                        chain,
                        live.data_key.clone(),
                        live.sealed_data_key.clone(),
                        live.state.recovery.clone(),
                    ))
                }
                _ => None,
            }
        };
        let Some((version, plain, lines, base, chain, key, sealed_key, header)) = batch else {
            continue;
        };
        let started = Instant::now();
        let result = plain
            .map_err(|e| Error::Corrupt(format!("encoding the state: {e}")))
            .and_then(|plain| SealedFile::seal(&key, &sealed_key, header, &plain))
            .and_then(|sealed| inner.store.commit(&sealed, base, &lines));
        match result {
            Ok(()) => {
                durable = version;
                inner.metrics.commit(lines.len(), started.elapsed());
                if let Phase::Ready(live) = &mut *inner.phase.lock().unwrap_or_else(|p| p.into_inner()) {
                    live.committed_chain = chain;
                }
                tx.send_modify(|d| d.version = version);
            }
            Err(e) => {
                tracing::error!("commit failed, the coordinator stops: {e}");
                tx.send_modify(|d| d.poison = Some(e.to_string()));
                return;
            }
        }
    }
}
