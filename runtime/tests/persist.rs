//! Power-fail safety of the parameter store (feature `persist`), on a simulated NOR flash
//! that cuts power at every word write and page erase of a save — cleanly, or leaving the
//! word half-programmed or the page half-erased — then reboots and checks that exactly the
//! previous or the new parameters load, bit for bit. Also: many saves in a row with cuts
//! (garbage collection and wear levelling), refusals (another model, another record or blob
//! format version, corrupted bytes) and the store's errors.
//!
//! `cargo test -p anole --release --all-features --test persist -- --nocapture` prints
//! one summary line per test (the numbers of the power-cut table in docs/reliability.md).

mod common;

use anole::persist::{model_crc, Loaded, PersistError, Refused, Store, HEAD_LEN, RECORD_MAGIC};
use anole::{Blob, Error, Layer, Learner};
use common::{dense, exported, Model, Rng, MSE};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// How the operation at the cut point ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tear {
    /// Power is lost just before the operation: it leaves no trace.
    Clean,
    /// Power is lost part way, in address order: a word write programs its first 1 to
    /// `WORD - 1` bytes; a page erase erases its first 1 to `PAGE - 1` bytes (the fault
    /// model `sequential-storage` is fuzzed against).
    Prefix,
    /// Power is lost part way, anywhere: a word write clears a random subset of the bits it
    /// was clearing; a page erase leaves each byte unchanged, erased, or with random bits
    /// set (all three occur in one page).
    Bits,
}

const TEARS: [Tear; 3] = [Tear::Clean, Tear::Prefix, Tear::Bits];

#[derive(Debug, Clone, Copy, PartialEq)]
enum SimError {
    PowerLost,
    NotAligned,
    OutOfBounds,
    /// A word written twice without an erase in between (NorFlash forbids it).
    WrittenTwice,
}

impl NorFlashError for SimError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            SimError::NotAligned => NorFlashErrorKind::NotAligned,
            SimError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// NOR flash of `PAGES` pages of `PAGE` bytes, written in words of `WORD` bytes, with a
/// power cut at the `at`-th atomic operation (one word written, or one page erased).
#[derive(Clone)]
struct Sim<const PAGE: usize, const WORD: usize> {
    data: Vec<u8>,
    /// Per word: programmed since its page was last erased.
    written: Vec<bool>,
    /// Per page: erase count.
    erases: Vec<u64>,
    /// Atomic operations done since power-on.
    ops: u64,
    word_writes: u64,
    page_erases: u64,
    cut: Option<(u64, Tear)>,
    dead: bool,
    rng: u64,
    /// Per operation since power-on: true for a page erase, false for a word write.
    log: Vec<bool>,
    /// Pages whose bit 0 of every byte cannot be programmed (a worn-out flash).
    stuck: core::ops::Range<usize>,
}

impl<const PAGE: usize, const WORD: usize> Sim<PAGE, WORD> {
    fn new(pages: usize) -> Self {
        Sim {
            data: vec![0xFF; pages * PAGE],
            written: vec![false; pages * PAGE / WORD],
            erases: vec![0; pages],
            ops: 0,
            word_writes: 0,
            page_erases: 0,
            cut: None,
            dead: false,
            rng: 0x2545_F491_4F6C_DD1D,
            log: Vec::new(),
            stuck: 0..0,
        }
    }
    fn range(&self) -> core::ops::Range<u32> {
        0..self.data.len() as u32
    }
    /// Arm a cut at operation `at` (counted from now).
    fn arm(&mut self, at: u64, tear: Tear, seed: u64) {
        self.ops = 0;
        self.word_writes = 0;
        self.page_erases = 0;
        self.cut = Some((at, tear));
        self.rng = seed | 1;
        self.log.clear();
    }
    /// Power comes back: operations work again, counters restart.
    fn reboot(&mut self) {
        self.dead = false;
        self.cut = None;
        self.ops = 0;
        self.word_writes = 0;
        self.page_erases = 0;
        self.log.clear();
    }
    fn random(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
    /// Count one atomic operation; `Some(tear)` if power is lost at it.
    fn tick(&mut self, erase: bool) -> Result<Option<Tear>, SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        self.log.push(erase);
        let at = self.ops;
        self.ops += 1;
        match self.cut {
            Some((k, tear)) if k == at => {
                self.dead = true;
                Ok(Some(tear))
            }
            _ => Ok(None),
        }
    }
}

impl<const PAGE: usize, const WORD: usize> ErrorType for Sim<PAGE, WORD> {
    type Error = SimError;
}

impl<const PAGE: usize, const WORD: usize> ReadNorFlash for Sim<PAGE, WORD> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        if self.dead {
            return Err(SimError::PowerLost);
        }
        let o = offset as usize;
        let src = self
            .data
            .get(o..o + bytes.len())
            .ok_or(SimError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const PAGE: usize, const WORD: usize> NorFlash for Sim<PAGE, WORD> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        let (from, to) = (from as usize, to as usize);
        if from % PAGE != 0 || to % PAGE != 0 || from > to {
            return Err(SimError::NotAligned);
        }
        if to > self.data.len() {
            return Err(SimError::OutOfBounds);
        }
        for page in (from..to).step_by(PAGE) {
            let tear = self.tick(true)?;
            let bytes = page..page + PAGE;
            match tear {
                None => {
                    self.data[bytes].fill(0xFF);
                    self.erases[page / PAGE] += 1;
                    self.page_erases += 1;
                }
                Some(Tear::Clean) => {}
                Some(Tear::Prefix) => {
                    let r = 1 + (self.random() as usize) % (PAGE - 1);
                    self.data[page..page + r].fill(0xFF);
                }
                Some(Tear::Bits) => {
                    for i in bytes {
                        match self.random() % 3 {
                            0 => {}
                            1 => self.data[i] = 0xFF,
                            _ => self.data[i] |= self.random() as u8,
                        }
                    }
                }
            }
            for w in page / WORD..(page + PAGE) / WORD {
                if self.data[w * WORD..(w + 1) * WORD]
                    .iter()
                    .all(|&b| b == 0xFF)
                {
                    self.written[w] = false;
                }
            }
            if tear.is_some() {
                return Err(SimError::PowerLost);
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        let o = offset as usize;
        if o % WORD != 0 || bytes.len() % WORD != 0 {
            return Err(SimError::NotAligned);
        }
        if o + bytes.len() > self.data.len() {
            return Err(SimError::OutOfBounds);
        }
        for (i, word) in bytes.chunks_exact(WORD).enumerate() {
            let at = o + i * WORD;
            if self.written[at / WORD] {
                return Err(SimError::WrittenTwice);
            }
            let tear = self.tick(false)?;
            match tear {
                None => {
                    let keep = if self.stuck.contains(&(at / PAGE)) {
                        1
                    } else {
                        0
                    };
                    for (d, s) in self.data[at..at + WORD].iter_mut().zip(word) {
                        *d &= s | keep;
                    }
                    self.word_writes += 1;
                }
                Some(Tear::Clean) => {}
                Some(Tear::Prefix) => {
                    let n = 1 + (self.random() as usize) % (WORD - 1);
                    for (d, s) in self.data[at..at + n].iter_mut().zip(word) {
                        *d &= s;
                    }
                }
                Some(Tear::Bits) => {
                    for (j, s) in word.iter().enumerate() {
                        let clearing = self.data[at + j] & !s;
                        let mask = clearing & self.random() as u8;
                        self.data[at + j] &= !mask;
                    }
                }
            }
            if tear != Some(Tear::Clean) {
                self.written[at / WORD] = true;
            }
            if tear.is_some() {
                return Err(SimError::PowerLost);
            }
        }
        Ok(())
    }
}

/// The sine MLP 1→64→64→1 (tanh): a 17 kB f32 blob.
fn sine(seed: u64) -> Model {
    Model::new(
        &[1],
        vec![
            dense(1, 64),
            Layer::Tanh,
            dense(64, 64),
            Layer::Tanh,
            dense(64, 1),
        ],
        MSE,
        seed,
    )
}

/// A small classifier (3 → 8 → 4): a few hundred bytes, for quick many-save runs.
fn tiny(seed: u64) -> Model {
    Model::new(&[3], vec![dense(3, 8), Layer::Relu, dense(8, 4)], MSE, seed)
}

fn arena(blob: &Blob<'_>) -> Vec<f32> {
    vec![0.0; blob.arena_len(blob.settings().batch as usize).unwrap()]
}

/// Parameters of `blob` moved by a seeded perturbation: one "adaptation".
fn adapted(blob: &Blob<'_>, seed: u64) -> Vec<f32> {
    let mut a = arena(blob);
    let l = Learner::new(blob, &mut a).unwrap();
    let mut rng = Rng::new(seed);
    l.params()
        .iter()
        .map(|p| p + rng.uniform(-0.05, 0.05))
        .collect()
}

/// The blob a learner exports with `params`.
fn export_with(blob: &Blob<'_>, params: &[f32]) -> Vec<u8> {
    let mut a = arena(blob);
    let mut l = Learner::new(blob, &mut a).unwrap();
    l.set_params(params).unwrap();
    exported(&l)
}

/// Bytes of `blob` as encoded (what its learner exports), without encoding it.
fn encoded(blob: &Blob<'_>) -> usize {
    anole::blob::encoded_len(&blob.wire)
}

/// What a fresh boot loads: the result and the learner's parameters.
fn boot_params<const P: usize, const W: usize>(
    flash: &mut Sim<P, W>,
    blob: &Blob<'_>,
) -> Result<(Loaded, Vec<f32>), PersistError<SimError>> {
    let range = flash.range();
    let mut store = Store::new(&mut *flash, range)?;
    let mut a = arena(blob);
    let mut l = Learner::new(blob, &mut a).unwrap();
    // Start from garbage so a load that leaves parameters untouched cannot pass.
    let junk = vec![123.0; l.params().len()];
    l.set_params(&junk).unwrap();
    let mut buf = vec![0u8; Store::<&mut Sim<P, W>>::buffer_len(encoded(blob))];
    let loaded = store.load_into(&mut l, &mut buf)?;
    Ok((loaded, l.params().to_vec()))
}

/// What a fresh boot loads: the result and the blob the learner then exports.
fn boot<const P: usize, const W: usize>(
    flash: &mut Sim<P, W>,
    blob: &Blob<'_>,
) -> Result<(Loaded, Vec<u8>), PersistError<SimError>> {
    let (loaded, params) = boot_params(flash, blob)?;
    Ok((loaded, export_with(blob, &params)))
}

fn save<const P: usize, const W: usize>(
    flash: &mut Sim<P, W>,
    blob: &Blob<'_>,
    params: &[f32],
) -> Result<anole::persist::Saved, PersistError<SimError>> {
    let range = flash.range();
    let mut store = Store::new(&mut *flash, range)?;
    let mut a = arena(blob);
    let mut l = Learner::new(blob, &mut a).unwrap();
    l.set_params(params).unwrap();
    let mut buf = vec![0u8; Store::<&mut Sim<P, W>>::buffer_len(encoded(blob))];
    store.save(&l, &mut buf)
}

/// The state a boot must find: the parameters and the generation (`None` = nothing saved,
/// the meta-initialization). For these f32 models, bit-identical parameters are a
/// bit-identical exported blob.
#[derive(Clone)]
struct State {
    params: Vec<f32>,
    generation: Option<u32>,
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn matches(loaded: &Loaded, params: &[f32], s: &State) -> bool {
    match (*loaded, s.generation) {
        (Loaded::Adapted { generation, .. }, Some(g)) => generation == g && same(params, &s.params),
        (Loaded::Initial { refused: None }, None) => same(params, &s.params),
        _ => false,
    }
}

/// The parameters `blob` loads with.
fn init_params(blob: &Blob<'_>) -> Vec<f32> {
    let mut a = arena(blob);
    Learner::new(blob, &mut a).unwrap().params().to_vec()
}

/// Counts of one sweep. `tried[erase][tear]`: cut points by operation kind (word write,
/// page erase) and tear (clean, prefix, bits).
#[derive(Default, Debug)]
struct Tally {
    tried: [[u64; 3]; 2],
    old: u64,
    new: u64,
    lost: u64,
    second_cuts: u64,
    boots_writing: u64,
    continued: u64,
    rewrote: u64,
}

impl Tally {
    fn cuts(&self) -> u64 {
        self.tried.iter().flatten().sum()
    }
}

/// Word writes between two cut points of [`sweep_save`]: every one in an optimized build (the
/// README's figures); every 16th in a debug build, many times slower, so that a plain
/// `cargo test` ends in minutes. Every page erase is cut in both.
const CUT_STRIDE: usize = if cfg!(debug_assertions) { 16 } else { 1 };

/// Cut power at every operation of one save (cleanly, torn in address order, torn at
/// random bits), reboot, check the loaded blob is exactly the old or the new one, then
/// check the store still takes a save. Each write or erase the boot itself does (repairs)
/// is cut too, and the boot after that checked.
#[allow(clippy::too_many_arguments)]
fn sweep_save<const P: usize, const W: usize>(
    before: &Sim<P, W>,
    blob: &Blob<'_>,
    params: &[f32],
    old: &State,
    new: &State,
    next: &[f32],
    t: &mut Tally,
) {
    let mut dry = before.clone();
    dry.reboot();
    let saved = save(&mut dry, blob, params).expect("uncut save");
    assert_eq!(Some(saved.generation), new.generation);
    let kinds = dry.log.clone();
    // Cut points are independent: spread them over the cores.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let kinds = &kinds;
                scope.spawn(move || {
                    let mut t = Tally::default();
                    let points = kinds.iter().enumerate();
                    #[allow(clippy::modulo_one)] // CUT_STRIDE is 1 in an optimized build
                    let points = points.filter(|&(k, &is_erase)| is_erase || k % CUT_STRIDE == 0);
                    for (k, &is_erase) in points.skip(w).step_by(threads) {
                        cut_at(before, blob, params, old, new, next, k, is_erase, &mut t);
                    }
                    t
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| h.join().expect("sweep worker"))
            .collect()
    });
    for u in tallies {
        for (a, b) in t.tried.iter_mut().flatten().zip(u.tried.iter().flatten()) {
            *a += b;
        }
        t.old += u.old;
        t.new += u.new;
        t.lost += u.lost;
        t.second_cuts += u.second_cuts;
        t.boots_writing += u.boots_writing;
        t.continued += u.continued;
        t.rewrote += u.rewrote;
    }
}

/// One cut point of [`sweep_save`]: operation `k`, with each tear.
#[allow(clippy::too_many_arguments)]
fn cut_at<const P: usize, const W: usize>(
    before: &Sim<P, W>,
    blob: &Blob<'_>,
    params: &[f32],
    old: &State,
    new: &State,
    next: &[f32],
    k: usize,
    is_erase: bool,
    t: &mut Tally,
) {
    for (ti, &tear) in TEARS.iter().enumerate() {
        let mut f = before.clone();
        f.arm(k as u64, tear, 0x9E37_79B9 ^ ((k as u64) << 8) ^ ti as u64);
        assert!(
            save(&mut f, blob, params).is_err(),
            "save cut at {k} did not fail"
        );
        f.reboot();
        t.tried[is_erase as usize][ti] += 1;
        let pre = f.clone();
        let ok = match boot_params(&mut f, blob) {
            Ok((loaded, bytes)) if matches(&loaded, &bytes, old) => {
                t.old += 1;
                true
            }
            Ok((loaded, bytes)) if matches(&loaded, &bytes, new) => {
                t.new += 1;
                true
            }
            Ok((loaded, _)) => {
                eprintln!(
                    "cut {k} ({tear:?}, erase {is_erase}): loaded {loaded:?}, neither old nor new"
                );
                false
            }
            Err(e) => {
                eprintln!("cut {k} ({tear:?}, erase {is_erase}): boot failed: {e}");
                false
            }
        };
        if !ok {
            t.lost += 1;
            continue;
        }
        // If the boot wrote (the map repairing what the cut left), cut each of those
        // operations too and boot once more.
        t.boots_writing += (f.ops > 0) as u64;
        for j in 0..f.ops {
            let mut g = pre.clone();
            g.arm(j, Tear::Bits, 77 + j);
            let _ = boot_params(&mut g, blob);
            g.reboot();
            t.second_cuts += 1;
            match boot_params(&mut g, blob) {
                Ok((l, b)) if matches(&l, &b, old) || matches(&l, &b, new) => {}
                other => {
                    eprintln!("cut {k} then boot cut {j}: {:?}", other.map(|x| x.0));
                    t.lost += 1;
                }
            }
        }
        f.reboot();
        // The store still works: a later save loads.
        match save(&mut f, blob, next) {
            Ok(s) => {
                t.rewrote += s.rewrote as u64;
                match boot_params(&mut f, blob) {
                    Ok((Loaded::Adapted { generation, .. }, b))
                        if generation == s.generation && same(&b, next) =>
                    {
                        t.continued += 1
                    }
                    other => {
                        eprintln!(
                            "cut {k} ({tear:?}): save after reboot, then boot: {:?}",
                            other.map(|x| x.0)
                        );
                        t.lost += 1;
                    }
                }
            }
            Err(e) => {
                eprintln!("cut {k} ({tear:?}): save after reboot failed: {e}");
                t.lost += 1;
            }
        }
    }
}

const PAGE: usize = 2048;
const WORD: usize = 4;
type Flash = Sim<PAGE, WORD>;
type FlashStore<'f> = Store<&'f mut Flash>;

fn blob_len(blob: &Blob<'_>) -> usize {
    let mut a = arena(blob);
    Learner::new(blob, &mut a).unwrap().export_len()
}

#[test]
fn power_cut_at_every_write_and_erase_of_a_save() {
    let model = sine(11);
    let bytes = model.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let len = blob_len(&blob);
    let chunks = FlashStore::chunks(len);
    let pages = FlashStore::pages_needed(len);
    let mut flash = Flash::new(pages);
    let mut t = Tally::default();
    let mut state = State {
        params: init_params(&blob),
        generation: None,
    };
    // Each half holds one record; from the third save on, every save reclaims pages of its
    // half (migrations and erases), so five saves put cuts in every kind of operation.
    let saves = 5;
    for s in 0..saves {
        let params = adapted(&blob, 100 + s);
        let next = adapted(&blob, 900 + s);
        let new = State {
            params: params.clone(),
            generation: Some(s as u32 + 1),
        };
        sweep_save(&flash, &blob, &params, &state, &new, &next, &mut t);
        flash.reboot();
        save(&mut flash, &blob, &params).unwrap();
        state = new;
    }
    let [w, e] = t.tried;
    println!(
        "power-cut sweep: sine MLP {len}-byte f32 blob in {chunks} chunks per copy, flash {pages} x {PAGE}-byte pages, \
         {WORD}-byte words, {saves} saves; cut points tried {} = word writes {} (clean {}, prefix {}, bits {}) + page erases {} \
         (clean {}, prefix {}, bits {}); boots that wrote (repairs) {}, each of their operations cut too: {}; loaded old {}, new {}; \
         a later save worked after every cut: {} (erase-and-rewrite of a damaged half: {}); lost {}",
        t.cuts(),
        w.iter().sum::<u64>(),
        w[0],
        w[1],
        w[2],
        e.iter().sum::<u64>(),
        e[0],
        e[1],
        e[2],
        t.boots_writing,
        t.second_cuts,
        t.old,
        t.new,
        t.continued,
        t.rewrote,
        t.lost
    );
    assert!(
        e.iter().all(|&n| n > 0),
        "no cut landed in a page erase: {t:?}"
    );
    assert!(t.old > 0);
    assert_eq!(t.lost, 0, "{t:?}");
    assert_eq!(t.continued, t.cuts(), "{t:?}");
}

/// Hundreds of saves in a row, half of them cut at a random operation with a random tear,
/// each followed by a reboot: the map wraps around its pages many times (garbage
/// collection) and the erases spread over all pages (wear levelling).
#[test]
fn many_saves_with_random_cuts() {
    let model = sine(12);
    let bytes = model.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let len = blob_len(&blob);
    let pages = FlashStore::pages_needed(len);
    let mut flash = Flash::new(pages);
    let mut rng = Rng::new(5);
    let mut state = State {
        params: init_params(&blob),
        generation: None,
    };
    let (rounds, mut cuts, mut completed, mut lost) = (400u64, 0u64, 0u64, 0u64);
    let mut generation = 0;
    for r in 0..rounds {
        let params = adapted(&blob, 5000 + r);
        let mut dry = flash.clone();
        save(&mut dry, &blob, &params).unwrap();
        let ops = dry.ops;
        let cut = rng.below(2) == 0;
        if cut {
            let tear = TEARS[rng.below(3)];
            flash.arm(rng.below(ops as usize) as u64, tear, r);
            assert!(save(&mut flash, &blob, &params).is_err());
            cuts += 1;
        } else {
            let s = save(&mut flash, &blob, &params).unwrap();
            generation = s.generation;
            completed += 1;
        }
        flash.reboot();
        let (loaded, exported) = boot_params(&mut flash, &blob).unwrap();
        let expect = if cut {
            state.clone()
        } else {
            State {
                params,
                generation: Some(generation),
            }
        };
        if !matches(&loaded, &exported, &expect) {
            eprintln!("round {r}: loaded {loaded:?}");
            lost += 1;
        }
        state = expect;
        flash.reboot();
    }
    let min = flash.erases.iter().min().copied().unwrap_or(0);
    let max = flash.erases.iter().max().copied().unwrap_or(0);
    let total: u64 = flash.erases.iter().sum();
    println!(
        "many saves: {rounds} saves of a {len}-byte blob on {pages} pages, {cuts} cut at a random point, {completed} completed; \
         page erases {total} (per page min {min}, max {max}); lost {lost}"
    );
    assert_eq!(lost, 0);
    assert!(min > 0, "some page was never reused: {:?}", flash.erases);
}

/// Load the newest record through a fresh learner of `blob`.
fn load<const P: usize, const W: usize>(
    flash: &mut Sim<P, W>,
    blob: &Blob<'_>,
) -> (Loaded, Vec<u8>) {
    flash.reboot();
    boot(flash, blob).unwrap()
}

#[test]
fn record_of_another_model_is_refused() {
    let a_bytes = sine(1).encode();
    let b_bytes = sine(2).encode(); // same architecture, another meta-initialization
    let c_bytes = tiny(3).encode(); // another architecture
    let a = Blob::parse(&a_bytes).unwrap();
    let b = Blob::parse(&b_bytes).unwrap();
    let c = Blob::parse(&c_bytes).unwrap();
    let mut flash = Flash::new(FlashStore::pages_needed(blob_len(&a)));
    save(&mut flash, &a, &adapted(&a, 1)).unwrap();
    let (loaded, bytes) = load(&mut flash, &b);
    let Loaded::Initial {
        refused: Some(Refused::OtherModel { stored, expected }),
    } = loaded
    else {
        panic!("record of model A loaded into model B: {loaded:?}");
    };
    assert_eq!((stored, expected), (model_crc(&a), model_crc(&b)));
    assert_eq!(bytes, b_bytes, "model B not at its initialization");
    println!(
        "bad input: record of another model -> {}",
        Refused::OtherModel { stored, expected }
    );
    let (loaded, bytes) = load(&mut flash, &c);
    assert!(
        matches!(
            loaded,
            Loaded::Initial {
                refused: Some(Refused::OtherModel { .. })
            }
        ),
        "{loaded:?}"
    );
    assert_eq!(bytes, c_bytes);
    // Loading parameters of another architecture straight into a learner is refused too.
    let mut arena_c = arena(&c);
    let mut lc = Learner::new(&c, &mut arena_c).unwrap();
    assert_eq!(lc.load_params_from(&a), Err(Error::ArchitectureMismatch));
    assert_eq!(
        lc.params(),
        &init_params(&c)[..],
        "refused load changed the parameters"
    );
    // The model fingerprint is the blob's CRC trailer.
    let trailer = u32::from_le_bytes(a_bytes[a_bytes.len() - 4..].try_into().unwrap());
    assert_eq!(model_crc(&a), trailer);
    // Model B saves over it; model A's record, in the other half, is still refused for B.
    let pb = adapted(&b, 2);
    save(&mut flash, &b, &pb).unwrap();
    let (loaded, bytes) = load(&mut flash, &b);
    assert_eq!(
        loaded,
        Loaded::Adapted {
            generation: 2,
            len: bytes.len()
        }
    );
    assert_eq!(bytes, export_with(&b, &pb));
}

impl<const PAGE: usize, const WORD: usize> embedded_storage_async::nor_flash::ReadNorFlash
    for Sim<PAGE, WORD>
{
    const READ_SIZE: usize = 1;
    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), SimError> {
        ReadNorFlash::read(self, offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const PAGE: usize, const WORD: usize> embedded_storage_async::nor_flash::NorFlash
    for Sim<PAGE, WORD>
{
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;
    async fn erase(&mut self, from: u32, to: u32) -> Result<(), SimError> {
        NorFlash::erase(self, from, to)
    }
    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), SimError> {
        NorFlash::write(self, offset, bytes)
    }
}

/// Write raw items into one half of the store, as another writer would (a future format
/// version, or damage that passes the map's own CRCs).
fn put_items(flash: &mut Flash, half: usize, items: &[(u16, &[u8])]) {
    use sequential_storage::cache::Cache;
    use sequential_storage::map::{MapConfig, MapStorage};
    let pages = flash.erases.len() / 2;
    let start = (half * pages * PAGE) as u32;
    let range = start..start + (pages * PAGE) as u32;
    let mut map =
        MapStorage::<u16, _, _>::new(&mut *flash, MapConfig::new(range), Cache::new_uncached());
    let mut scratch = vec![0u8; PAGE];
    for (key, value) in items {
        embassy_futures::block_on(map.store_item(&mut scratch, key, value)).unwrap();
    }
}

/// A head record as format version 1 writes it.
fn head(generation: u32, model: u32, blob: &[u8], chunk: usize) -> [u8; HEAD_LEN] {
    let mut h = [0u8; HEAD_LEN];
    h[0..4].copy_from_slice(&RECORD_MAGIC);
    h[4..6].copy_from_slice(&1u16.to_le_bytes());
    h[6] = 1;
    h[8..12].copy_from_slice(&generation.to_le_bytes());
    h[12..16].copy_from_slice(&model.to_le_bytes());
    h[16..20].copy_from_slice(&(blob.len() as u32).to_le_bytes());
    h[20..24].copy_from_slice(&content(blob).to_le_bytes());
    h[24..28].copy_from_slice(&(chunk as u32).to_le_bytes());
    let c = anole::blob::crc32(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
    h
}

/// CRC-32 of a blob without its trailer: what a head record stores.
fn content(blob: &[u8]) -> u32 {
    anole::blob::crc32(&blob[..blob.len() - 4])
}

fn reseal(h: &mut [u8; HEAD_LEN]) {
    let c = anole::blob::crc32(&h[..28]);
    h[28..32].copy_from_slice(&c.to_le_bytes());
}

/// Write a whole record (chunks, then head) into `half`.
fn put_record(flash: &mut Flash, half: usize, head: &[u8], blob: &[u8]) {
    let chunk = FlashStore::CHUNK_LEN;
    let mut items: Vec<(u16, &[u8])> = blob
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| (i as u16 + 1, c))
        .collect();
    items.push((anole::persist::HEAD_KEY, head));
    put_items(flash, half, &items);
}

#[test]
fn records_of_other_versions_or_damaged_are_refused() {
    let bytes = sine(4).encode();
    let blob = Blob::parse(&bytes).unwrap();
    let len = blob_len(&blob);
    let pages = FlashStore::pages_needed(len);
    let model = model_crc(&blob);
    let params = adapted(&blob, 4);
    let good = export_with(&blob, &params);
    let chunk = FlashStore::CHUNK_LEN;

    // A valid record written by hand loads: the layout is what the module documents.
    let mut flash = Flash::new(pages);
    put_record(&mut flash, 0, &head(7, model, &good, chunk), &good);
    let (loaded, out) = load(&mut flash, &blob);
    assert_eq!(loaded, Loaded::Adapted { generation: 7, len });
    assert_eq!(out, good);

    let mut cases: Vec<(&str, Vec<u8>, Vec<u8>, Refused)> = Vec::new();
    let mut h = head(7, model, &good, chunk);
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    cases.push((
        "record format version 2",
        h.to_vec(),
        good.clone(),
        Refused::Version {
            found: 2,
            supported: 1,
        },
    ));
    let mut h = head(7, model, &good, chunk);
    h[0] = b'X';
    cases.push((
        "head with a wrong magic",
        h.to_vec(),
        good.clone(),
        Refused::CorruptHead,
    ));
    let mut h = head(7, model, &good, chunk);
    h[9] ^= 1;
    cases.push((
        "head with a wrong CRC",
        h.to_vec(),
        good.clone(),
        Refused::CorruptHead,
    ));
    let mut h = head(7, model, &good, chunk);
    h[6] = 3;
    reseal(&mut h);
    cases.push((
        "head with an unknown state",
        h.to_vec(),
        good.clone(),
        Refused::CorruptHead,
    ));
    cases.push((
        "head cut short",
        head(7, model, &good, chunk)[..20].to_vec(),
        good.clone(),
        Refused::CorruptHead,
    ));
    let mut bad = good.clone();
    bad[100] ^= 0x10;
    let computed = content(&bad);
    cases.push((
        "blob bytes changed after the head was written",
        head(7, model, &good, chunk).to_vec(),
        bad,
        Refused::Crc {
            stored: content(&good),
            computed,
        },
    ));
    let other = export_with(&blob, &adapted(&blob, 99));
    cases.push((
        "head of one save, intact blob of another",
        head(7, model, &good, chunk).to_vec(),
        other.clone(),
        Refused::Crc {
            stored: content(&good),
            computed: content(&other),
        },
    ));
    let mut h = head(7, model, &good, chunk);
    h[16..20].copy_from_slice(&((len + 8) as u32).to_le_bytes());
    reseal(&mut h);
    cases.push((
        "head with another blob length",
        h.to_vec(),
        good.clone(),
        Refused::Length {
            stored: len + 8,
            expected: len,
        },
    ));
    let short = good[..chunk * 2].to_vec();
    let computed = content(&[&short[..], &vec![0u8; len - short.len()][..]].concat());
    cases.push((
        "chunks missing",
        head(7, model, &good, chunk).to_vec(),
        short,
        Refused::Crc {
            stored: content(&good),
            computed,
        },
    ));
    // The blob inside, in a blob format version this runtime does not read (CRC-valid,
    // record CRC-valid): the version byte of the same blob raised past the newest.
    let mut v3 = sine(4);
    v3.params = params.clone();
    let mut v3_bytes = common::encode(&v3.wire());
    v3_bytes[4] = (anole::blob::FORMAT_VERSION + 1) as u8;
    let n = v3_bytes.len() - 4;
    let crc = anole::blob::crc32(&v3_bytes[..n]);
    v3_bytes[n..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(v3_bytes.len(), len);
    cases.push((
        "blob of a newer format version inside",
        head(7, model, &v3_bytes, chunk).to_vec(),
        v3_bytes,
        Refused::Blob(Error::UnsupportedVersion {
            found: anole::blob::FORMAT_VERSION + 1,
            supported: anole::blob::FORMAT_VERSION,
        }),
    ));
    // The blob inside with a NaN weight (CRC-valid).
    let mut nan = sine(4);
    nan.params = params.clone();
    nan.params[3] = f32::NAN;
    let nan_bytes = nan.encode();
    cases.push((
        "blob with a NaN weight inside",
        head(7, model, &nan_bytes, chunk).to_vec(),
        nan_bytes,
        Refused::Blob(Error::NonFiniteWeight { tensor: 0 }),
    ));

    for (what, h, b, refusal) in &cases {
        // Alone: refused, the learner is at the meta-initialization.
        let mut flash = Flash::new(pages);
        put_record(&mut flash, 1, h, b);
        let (loaded, out) = load(&mut flash, &blob);
        assert_eq!(
            loaded,
            Loaded::Initial {
                refused: Some(*refusal)
            },
            "{what}"
        );
        assert_eq!(out, bytes, "{what}: learner not at its initialization");
        // Newer than a good record in the other half: the good one loads.
        let mut flash = Flash::new(pages);
        put_record(&mut flash, 0, &head(6, model, &good, chunk), &good);
        put_record(&mut flash, 1, h, b);
        let (loaded, out) = load(&mut flash, &blob);
        assert_eq!(loaded, Loaded::Adapted { generation: 6, len }, "{what}");
        assert_eq!(out, good, "{what}");
        println!("bad input: {what} -> {refusal}");
    }
}

/// Flip one bit at every byte of a store holding two records: the newest record loads, or
/// the previous one (its copy is damaged), or nothing — never a blob that was not saved.
#[test]
fn bit_flips_anywhere_never_load_wrong_parameters() {
    let bytes = tiny(6).encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut flash = Sim::<512, 4>::new(Store::<&mut Sim<512, 4>>::pages_needed(blob_len(&blob)));
    let (p1, p2) = (adapted(&blob, 1), adapted(&blob, 2));
    save(&mut flash, &blob, &p1).unwrap();
    save(&mut flash, &blob, &p2).unwrap();
    let (b1, b2) = (export_with(&blob, &p1), export_with(&blob, &p2));
    let mut rng = Rng::new(9);
    let (mut newest, mut previous, mut initial, mut wrong) = (0, 0, 0, 0);
    for i in 0..flash.data.len() {
        let mut f = flash.clone();
        f.data[i] ^= 1 << rng.below(8);
        match boot(&mut f, &blob) {
            Ok((Loaded::Adapted { generation: 2, .. }, b)) if b == b2 => newest += 1,
            Ok((Loaded::Adapted { generation: 1, .. }, b)) if b == b1 => previous += 1,
            Ok((Loaded::Initial { .. }, b)) if b == bytes => initial += 1,
            other => {
                eprintln!("flip at {i}: {:?}", other.map(|x| x.0));
                wrong += 1
            }
        }
    }
    println!(
        "bit flips: {} positions ({} pages of 512 bytes, two records of {} bytes): newest loaded {newest}, \
         previous loaded {previous}, initialization {initial}, wrong parameters {wrong}",
        flash.data.len(),
        flash.erases.len(),
        b1.len()
    );
    assert_eq!(wrong, 0);
    assert!(previous > 0, "no flip ever hit the newest record");
}

#[test]
fn clear_and_f16_round_trip() {
    let mut m = sine(8);
    m.dtype = anole::DType::F16;
    let bytes = m.encode();
    let blob = Blob::parse(&bytes).unwrap();
    let mut flash = Flash::new(FlashStore::pages_needed(blob_len(&blob)));
    assert_eq!(load(&mut flash, &blob).0, Loaded::Initial { refused: None });
    let p = adapted(&blob, 8);
    save(&mut flash, &blob, &p).unwrap();
    let (loaded, out) = load(&mut flash, &blob);
    assert!(matches!(loaded, Loaded::Adapted { generation: 1, .. }));
    assert_eq!(out, export_with(&blob, &p), "f16 record not bit-identical");
    {
        let range = flash.range();
        let mut store = Store::new(&mut flash, range).unwrap();
        let mut buf = vec![0u8; FlashStore::buffer_len(0)];
        store.clear(&mut buf).unwrap();
    }
    let (loaded, out) = load(&mut flash, &blob);
    assert_eq!(loaded, Loaded::Initial { refused: None });
    assert_eq!(out, bytes);
    let s = save(&mut flash, &blob, &p).unwrap();
    assert_eq!(s.generation, 3);
    assert_eq!(
        load(&mut flash, &blob).0,
        Loaded::Adapted {
            generation: 3,
            len: out.len()
        }
    );
}

/// With exactly [`Store::pages_needed`] pages, saves of every size keep working: the bound
/// holds for blobs of 1 to many chunks and for several page sizes.
#[test]
fn pages_needed_is_enough() {
    fn run<const P: usize>(model: &Model, saves: u64) -> usize {
        let bytes = model.encode();
        let blob = Blob::parse(&bytes).unwrap();
        let pages = Store::<&mut Sim<P, 4>>::pages_needed(blob_len(&blob));
        let mut flash = Sim::<P, 4>::new(pages);
        for s in 0..saves {
            let p = adapted(&blob, s);
            save(&mut flash, &blob, &p).unwrap_or_else(|e| panic!("page {P}, save {s}: {e}"));
            let (loaded, out) = load(&mut flash, &blob);
            assert!(matches!(loaded, Loaded::Adapted { .. }));
            assert_eq!(out, export_with(&blob, &p));
        }
        pages
    }
    for (name, model) in [("tiny", tiny(1)), ("sine", sine(1))] {
        let a = run::<512>(&model, 30);
        let b = run::<1024>(&model, 30);
        let c = run::<4096>(&model, 30);
        println!("pages needed for {name}: {a} x 512 B, {b} x 1 KiB, {c} x 4 KiB");
    }
}

#[test]
fn store_errors_are_clear() {
    let bytes = sine(3).encode();
    let blob = Blob::parse(&bytes).unwrap();
    let len = blob_len(&blob);
    let needed = FlashStore::pages_needed(len);
    let mut a = arena(&blob);
    let l = Learner::new(&blob, &mut a).unwrap();
    let mut msgs = Vec::new();

    let mut flash = Flash::new(needed - 2);
    let range = flash.range();
    let mut store = Store::new(&mut flash, range).unwrap();
    let mut buf = vec![0u8; FlashStore::buffer_len(len)];
    let e = store.save(&l, &mut buf).unwrap_err();
    assert!(matches!(e, PersistError::RangeTooSmall { .. }), "{e}");
    msgs.push(("flash range too small for the blob", e.to_string()));
    let mut small = vec![0u8; len];
    let e = store.save(&l, &mut small).unwrap_err();
    assert!(matches!(e, PersistError::BufferTooSmall { .. }), "{e}");
    msgs.push(("buffer too small", e.to_string()));

    let mut flash = Flash::new(needed);
    let e = Store::new(&mut flash, 100..(needed * PAGE) as u32)
        .err()
        .unwrap();
    assert!(matches!(e, PersistError::Config(_)), "{e}");
    msgs.push(("range not on a page boundary", e.to_string()));
    let e = Store::new(&mut flash, 0..2 * PAGE as u32).err().unwrap();
    assert!(matches!(e, PersistError::Config(_)), "{e}");
    msgs.push(("range of fewer than 4 pages", e.to_string()));

    // A flash whose every write fails: the error says what failed.
    let mut flash = Flash::new(needed);
    flash.arm(0, Tear::Clean, 1);
    let range = flash.range();
    let mut store = Store::new(&mut flash, range).unwrap();
    let e = store.save(&l, &mut buf).unwrap_err();
    assert!(matches!(e, PersistError::Flash(_)), "{e}");
    msgs.push(("flash driver fails", e.to_string()));
    for (what, msg) in msgs {
        println!("bad input: {what} -> {msg}");
    }
}

/// A flash that does not keep what is written: the save reads its record back, reports it,
/// and the previous record still loads.
#[test]
fn a_record_that_does_not_read_back_is_reported() {
    let bytes = sine(13).encode();
    let blob = Blob::parse(&bytes).unwrap();
    let pages = FlashStore::pages_needed(blob_len(&blob));
    let mut flash = Flash::new(pages);
    let p1 = adapted(&blob, 1);
    let s1 = save(&mut flash, &blob, &p1).unwrap();
    assert_eq!(s1.half, 0);
    flash.stuck = pages / 2..pages;
    let e = save(&mut flash, &blob, &adapted(&blob, 2)).unwrap_err();
    assert!(matches!(e, PersistError::Verify(_)), "{e}");
    println!("bad input: flash does not keep the written record -> {e}");
    let (loaded, params) = boot_params(&mut flash, &blob).unwrap();
    assert_eq!(
        loaded,
        Loaded::Adapted {
            generation: 1,
            len: encoded(&blob)
        }
    );
    assert!(same(&params, &p1));
}
