//! Starting the cores: one pinned thread per core, each with its own ring, arena, executor and
//! mesh endpoint. Nothing is shared between cores but the mesh queues.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use crate::arena::{Arena, ArenaConfig};
use crate::dma::DmaStorage;
use crate::env::LinuxEnv;
use crate::error::RuntimeError;
use crate::executor::Executor;
use crate::limits::{CORES_MAX, MESH_QUEUE_CAPACITY_DEFAULT};
use crate::mesh::{Mesh, MeshEndpoint};
use crate::uring::{Ring, RingConfig};

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// CPU ids to pin one core thread each to.
    pub cpus: Vec<usize>,
    pub ring: RingConfig,
    pub arena: ArenaConfig,
    pub mesh_capacity: usize,
}

impl RuntimeConfig {
    /// One core per CPU this process may run on.
    pub fn all_cores() -> RuntimeConfig {
        RuntimeConfig::with_cpus(allowed_cpus())
    }

    /// The first `n` allowed CPUs.
    pub fn cores(n: usize) -> Result<RuntimeConfig, RuntimeError> {
        let cpus = allowed_cpus();
        if n == 0 || n > cpus.len() {
            return Err(RuntimeError::Config(format!("--cores {n}: this process may run on {} cpus ({cpus:?})", cpus.len())));
        }
        Ok(RuntimeConfig::with_cpus(cpus[..n].to_vec()))
    }

    pub fn with_cpus(cpus: Vec<usize>) -> RuntimeConfig {
        RuntimeConfig {
            cpus,
            ring: RingConfig::default(),
            arena: ArenaConfig::default_per_core(),
            mesh_capacity: MESH_QUEUE_CAPACITY_DEFAULT,
        }
    }
}

/// The CPUs in this process's affinity mask.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return vec![0];
    }
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

fn pin(core: usize, cpu: usize) -> Result<(), RuntimeError> {
    // SAFETY: building a one-cpu set and applying it to the calling thread.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(RuntimeError::Pin { core, cpu, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Checks on the calling thread that this kernel and process can run the engine at all, so that
/// a missing or forbidden io_uring is one clear message before any thread starts.
pub fn probe() -> Result<(), RuntimeError> {
    Ring::new(&RingConfig { entries: 8, sqpoll_idle_ms: None, files_max: 1 }).map(|_| ())
}

/// What a core's main future gets.
pub struct Core<M> {
    pub env: LinuxEnv,
    pub mesh: MeshEndpoint<M>,
}

/// Runs `main` on every configured core and returns each core's output, in core order.
pub fn run<M, T, F, Fut>(config: RuntimeConfig, main: F) -> Result<Vec<T>, RuntimeError>
where
    M: Send + 'static,
    T: Send,
    F: Fn(Core<M>) -> Fut + Sync,
    Fut: Future<Output = T>,
{
    let cores = config.cpus.len();
    if cores == 0 || cores > CORES_MAX {
        return Err(RuntimeError::Config(format!("{cores} cores: must be 1..={CORES_MAX}")));
    }
    config.arena.validate().map_err(RuntimeError::Config)?;
    probe()?;
    let mesh: Arc<Mesh<M>> = Mesh::new(cores, config.mesh_capacity).map_err(|source| RuntimeError::Ring { op: "eventfd", source })?;
    let started = Barrier::new(cores);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|core| {
                let (mesh, config, started, failed, main) = (&mesh, &config, &started, &failed, &main);
                std::thread::Builder::new()
                    .name(format!("core-{core}"))
                    .spawn_scoped(scope, move || run_core(core, config, mesh, started, failed, main))
                    .expect("spawning a core thread")
            })
            .collect();
        let mut out = Vec::with_capacity(cores);
        let mut first_error = None;
        for (core, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok(v)) => out.push(v),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(RuntimeError::CorePanicked { core });
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    })
}

fn run_core<M, T, F, Fut>(
    core: usize,
    config: &RuntimeConfig,
    mesh: &Arc<Mesh<M>>,
    started: &Barrier,
    failed: &AtomicBool,
    main: &F,
) -> Result<T, RuntimeError>
where
    M: Send + 'static,
    F: Fn(Core<M>) -> Fut,
    Fut: Future<Output = T>,
{
    let setup = || -> Result<(Rc<Ring>, Arena), RuntimeError> {
        pin(core, config.cpus[core])?;
        let ring = Rc::new(Ring::new(&config.ring)?);
        let arena = Arena::new(&config.arena).map_err(|source| RuntimeError::Ring { op: "arena mmap", source })?;
        ring.register_buffers(&arena)?;
        Ok((ring, arena))
    };
    let setup = setup();
    if setup.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    // Every core waits for the others, so none runs (and sends) while another failed to start.
    started.wait();
    let (ring, arena) = setup?;
    if failed.load(Ordering::SeqCst) {
        return Err(RuntimeError::Config(format!("core {core}: another core failed to start")));
    }
    let executor = Executor::new(ring.clone());
    let endpoint = mesh.endpoint(core);
    let poller_endpoint = endpoint.clone();
    executor.add_poller(Box::new(move |about_to_block| poller_endpoint.poll_inbox(about_to_block)));
    let env = LinuxEnv::new(DmaStorage::new(ring.clone(), arena), core, config.cpus.len());
    let eventfd = endpoint.eventfd();
    let out = executor.block_on(async {
        let _wake = crate::executor::spawn(eventfd_reader(ring.clone(), eventfd));
        main(Core { env, mesh: endpoint }).await
    });
    drop(executor);
    Ok(out)
}

/// Keeps one read of the core's eventfd in flight, so a sender can wake this core out of
/// io_uring_enter. The messages themselves are found by the mesh poller.
async fn eventfd_reader(ring: Rc<Ring>, eventfd: i32) {
    loop {
        // SAFETY: the eventfd lives in the mesh, which outlives every core.
        if let Err(e) = unsafe { crate::uring::read_eventfd(&ring, eventfd) }.await {
            assert!(matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)), "eventfd read: {e}");
        }
    }
}
