//! Property test of the entry points: 40,000 calls, each of a random function with random
//! arguments inside what the C contract allows (every pointer points into memory this test
//! owns, of at least the length it says): NULL, misaligned, too short, overlapping and wrong
//! lengths; NaN, infinite and huge values; released, copied, uninitialised and wrong-kind
//! handles; damaged blobs; failing flash callbacks. A panic inside an `extern "C"` function
//! aborts this process, so the test passing means no call panicked; and the status of a call
//! on a handle must agree with a model of the handles' states (live, released, of which kind).

use anole_capi::*;
use std::ffi::c_void;

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    /// A float that is often troublesome.
    fn float(&mut self) -> f32 {
        match self.below(10) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => -3e38,
            3 => 1e30,
            4 => 0.0,
            5 => (self.below(3)) as f32,
            _ => (self.next() % 2000) as f32 / 100.0 - 10.0,
        }
    }
}

/// Memory in 8-byte words, so every handle kind fits aligned.
fn words(bytes: usize) -> Vec<u64> {
    vec![0; bytes.div_ceil(8)]
}

/// A simulated NOR flash behind the C callbacks, failing some calls on purpose.
struct Flash {
    data: Vec<u8>,
    fail_percent: u64,
    rng: Rng,
}

unsafe extern "C" fn flash_read(ctx: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: `ctx` is the test's `Flash`; the library passes a buffer of `len` bytes.
    let (f, buf) = unsafe {
        (
            &mut *ctx.cast::<Flash>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let o = offset as usize;
    match f.data.get(o..o + len) {
        Some(src) if !f.rng.chance(f.fail_percent) => {
            buf.copy_from_slice(src);
            0
        }
        _ => -1,
    }
}

unsafe extern "C" fn flash_write(ctx: *mut c_void, offset: u32, buf: *const u8, len: usize) -> i32 {
    // SAFETY: as in `flash_read`.
    let (f, buf) = unsafe {
        (
            &mut *ctx.cast::<Flash>(),
            std::slice::from_raw_parts(buf, len),
        )
    };
    let o = offset as usize;
    if f.rng.chance(f.fail_percent) {
        return -2;
    }
    match f.data.get_mut(o..o + len) {
        Some(dst) => {
            dst.iter_mut().zip(buf).for_each(|(d, s)| *d &= *s);
            0
        }
        None => -1,
    }
}

unsafe extern "C" fn flash_erase(ctx: *mut c_void, from: u32, to: u32) -> i32 {
    // SAFETY: `ctx` is the test's `Flash`.
    let f = unsafe { &mut *ctx.cast::<Flash>() };
    if f.rng.chance(f.fail_percent) {
        return -3;
    }
    match f.data.get_mut(from as usize..to as usize) {
        Some(d) => {
            d.fill(0xFF);
            0
        }
        None => -1,
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Blob,
    Learner,
    Samples,
    Store,
}

/// One handle slot: its memory and what the model says it holds.
struct Slot {
    mem: Vec<u64>,
    kind: Kind,
    live: bool,
    /// Learners: the blob slot they use. Blobs: the bytes source they were parsed from.
    link: usize,
}

impl Slot {
    fn ptr(&mut self) -> *mut c_void {
        self.mem.as_mut_ptr().cast()
    }
}

#[test]
fn random_calls_never_panic_and_agree_with_the_handle_model() {
    let sine = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/sine/init.postcard"
    ))
    .expect("the sine model");
    // Blob byte sources: the model, and copies damaged at random while no blob uses them.
    let mut sources: Vec<Vec<u8>> = vec![sine.clone(), sine.clone(), sine.clone()];
    let mut slots: Vec<Slot> = Vec::new();
    for (kind, size, n) in [
        (Kind::Blob, ANOLE_BLOB_SIZE, 3),
        (Kind::Learner, ANOLE_LEARNER_SIZE, 3),
        (Kind::Samples, ANOLE_SAMPLES_SIZE, 2),
        (Kind::Store, ANOLE_STORE_SIZE, 1),
    ] {
        for _ in 0..n {
            slots.push(Slot {
                mem: words(size),
                kind,
                live: false,
                link: 0,
            });
        }
    }
    let idx = |k: Kind, slots: &[Slot]| -> Vec<usize> {
        (0..slots.len()).filter(|&i| slots[i].kind == k).collect()
    };
    let mut arenas: Vec<Vec<f32>> = (0..3).map(|_| vec![0.0; 16384]).collect();
    let mut storages: Vec<Vec<f32>> = (0..2).map(|_| vec![0.0; 64]).collect();
    let mut pool: Vec<u64> = vec![0; 1 << 16];
    let mut copy: Vec<u64> = words(ANOLE_BLOB_SIZE);
    // Only ever reached through this pointer (the callbacks get it as their context).
    let flash: *mut Flash = Box::into_raw(Box::new(Flash {
        data: vec![0xFF; 24 * 4096],
        fail_percent: 0,
        rng: Rng(7),
    }));
    let mut store_buf = vec![0u8; 32 * 1024];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut counts = [0usize; 2];
    let mut by_status = std::collections::BTreeMap::new();

    for call in 0..40_000 {
        // Refresh the scratch pool with random bits and troublesome floats.
        if call % 500 == 0 {
            for w in pool.iter_mut() {
                let (a, b) = (rng.float().to_bits() as u64, rng.float().to_bits() as u64);
                *w = a | b << 32;
            }
        }
        let pool_bytes = pool.len() * 8;
        let pool_ptr = pool.as_mut_ptr().cast::<u8>();
        // A pointer into the pool: (pointer, elements that fit after it), sometimes misaligned.
        let in_pool = |rng: &mut Rng, elem: usize| -> (*mut u8, usize) {
            let off = rng.below(pool_bytes / 2) & !7;
            let off = if rng.chance(10) {
                off + 1 + rng.below(3)
            } else {
                off
            };
            // SAFETY: `off` < pool_bytes: inside the pool.
            let p = unsafe { pool_ptr.add(off) };
            (p, (pool_bytes - off) / elem)
        };
        // A length for an array of `fit` elements at most, often small, sometimes zero.
        let len = |rng: &mut Rng, fit: usize| -> usize {
            match rng.below(4) {
                0 => 0,
                1 => rng.below(3).min(fit),
                2 => (1 + rng.below(20)).min(fit),
                _ => rng.below(fit.min(4096) + 1),
            }
        };
        // The pointer a handle argument gets: a slot of the wanted kind (live or not), a slot of
        // any kind, NULL, misaligned, a copy of a live handle, or scratch memory.
        let handle_arg = |rng: &mut Rng, slots: &mut [Slot], want: Kind, copy: &mut Vec<u64>| {
            let of_kind = idx(want, slots);
            match rng.below(10) {
                0 => (std::ptr::null_mut(), None),
                1 => {
                    let i = rng.below(slots.len());
                    (slots[i].ptr(), Some(i))
                }
                2 => {
                    let i = of_kind[rng.below(of_kind.len())];
                    // SAFETY: within the slot's memory.
                    (unsafe { slots[i].ptr().cast::<u8>().add(4).cast() }, None)
                }
                3 => {
                    let i = of_kind[rng.below(of_kind.len())];
                    let n = slots[i].mem.len().min(copy.len());
                    copy[..n].copy_from_slice(&slots[i].mem[..n]);
                    (copy.as_mut_ptr().cast(), None)
                }
                4 => {
                    let i = of_kind[rng.below(of_kind.len())];
                    (slots[i].ptr(), Some(i))
                }
                _ => {
                    // A live one when there is one.
                    let live: Vec<usize> =
                        of_kind.iter().copied().filter(|&i| slots[i].live).collect();
                    let pick = if live.is_empty() { &of_kind } else { &live };
                    let i = pick[rng.below(pick.len())];
                    (slots[i].ptr(), Some(i))
                }
            }
        };
        // What a call on the handle `h` must return before anything else, per the model.
        let handle_status = |h: *mut c_void, slot: Option<usize>, slots: &[Slot], want: Kind| {
            if h.is_null() {
                return Some(AnoleStatus::NullPointer);
            }
            if (h as usize) % 8 != 0 {
                return Some(AnoleStatus::Misaligned);
            }
            match slot {
                None => Some(AnoleStatus::NotAHandle),
                Some(i) if !slots[i].live => None, // released, failed or never used: below
                Some(i) if slots[i].kind != want => Some(AnoleStatus::WrongHandle),
                Some(_) => Some(AnoleStatus::Ok),
            }
        };

        let op = rng.below(20);
        let status: AnoleStatus;
        let mut expected: Option<AnoleStatus> = None;
        // SAFETY (every call below): each pointer is NULL, or points into memory this test
        // owns with at least the elements its length says (pool, slots, arenas, storages,
        // sources), or is a deliberately misaligned pointer inside such memory; memory a
        // live handle uses is only passed to calls on that same handle.
        unsafe {
            match op {
                0 => {
                    // Parse (plain or signed) into a blob slot not in use.
                    let b = idx(Kind::Blob, &slots);
                    let i = b[rng.below(b.len())];
                    let in_use = (0..slots.len()).any(|j| {
                        slots[j].kind == Kind::Learner && slots[j].live && slots[j].link == i
                    });
                    let src = rng.below(sources.len());
                    let src_in_use = (0..slots.len()).any(|j| {
                        slots[j].kind == Kind::Blob && slots[j].live && slots[j].link == src
                    });
                    if src == 2 && !src_in_use && rng.chance(50) {
                        let s = &mut sources[src];
                        let k = rng.below(s.len());
                        s[k] = rng.next() as u8;
                    }
                    let n = if rng.chance(10) {
                        rng.below(sources[src].len())
                    } else {
                        sources[src].len()
                    };
                    let mut out = std::ptr::null_mut();
                    status = if rng.chance(20) {
                        let key = [rng.next() as u8; 32];
                        anole_blob_parse_signed(
                            slots[i].ptr(),
                            ANOLE_BLOB_SIZE,
                            sources[src].as_ptr(),
                            n,
                            key.as_ptr(),
                            32,
                            &mut out,
                        )
                    } else {
                        anole_blob_parse(
                            slots[i].ptr(),
                            ANOLE_BLOB_SIZE,
                            sources[src].as_ptr(),
                            n,
                            &mut out,
                        )
                    };
                    if in_use && slots[i].live {
                        expected = Some(AnoleStatus::InUse);
                    } else {
                        slots[i].live = status == AnoleStatus::Ok;
                        slots[i].link = src;
                        assert_eq!(status == AnoleStatus::Ok, out == slots[i].ptr().cast());
                    }
                }
                1 => {
                    // Create a learner on a random blob argument in a learner slot not live.
                    let l = idx(Kind::Learner, &slots);
                    let i = l[rng.below(l.len())];
                    if slots[i].live && rng.chance(30) {
                        status = anole_learner_release(slots[i].ptr().cast());
                        expected = Some(AnoleStatus::Ok);
                        slots[i].live = false;
                    } else if !slots[i].live {
                        let (bh, bslot) = handle_arg(&mut rng, &mut slots, Kind::Blob, &mut copy);
                        let n_arenas = arenas.len();
                        let arena = &mut arenas[i % n_arenas];
                        let n = if rng.chance(80) {
                            arena.len()
                        } else {
                            len(&mut rng, arena.len())
                        };
                        let mut opts = AnoleLearnerOptions {
                            mode: rng.below(3) as u32,
                            trainable: if rng.chance(80) { 0b10101 } else { rng.next() },
                            batch: if rng.chance(80) {
                                1 + rng.below(12)
                            } else {
                                rng.next() as usize
                            },
                            lr: if rng.chance(80) { 0.01 } else { rng.float() },
                        };
                        let o: *mut AnoleLearnerOptions = if rng.chance(10) {
                            std::ptr::null_mut()
                        } else {
                            &mut opts
                        };
                        let mut out = std::ptr::null_mut();
                        status = anole_learner_init(
                            slots[i].ptr(),
                            ANOLE_LEARNER_SIZE,
                            bh.cast(),
                            arena.as_mut_ptr(),
                            n,
                            o,
                            &mut out,
                        );
                        if let Some(s) = handle_status(bh, bslot, &slots, Kind::Blob) {
                            if s != AnoleStatus::Ok {
                                expected = Some(s);
                            }
                        }
                        if status == AnoleStatus::Ok {
                            slots[i].live = true;
                            slots[i].link = bslot.expect("a learner only on a live blob");
                        }
                    } else {
                        status = anole_learner_reset(slots[i].ptr().cast());
                        expected = Some(AnoleStatus::Ok);
                    }
                }
                2 => {
                    // Create or release a sample buffer.
                    let s = idx(Kind::Samples, &slots);
                    let i = s[rng.below(s.len())];
                    if slots[i].live && rng.chance(30) {
                        status = anole_samples_release(slots[i].ptr().cast());
                        expected = Some(AnoleStatus::Ok);
                        slots[i].live = false;
                    } else if !slots[i].live {
                        let n_storages = storages.len();
                        let st = &mut storages[i % n_storages];
                        let mut out = std::ptr::null_mut();
                        let (cap, il, tl) = (rng.below(12), rng.below(3), rng.below(3));
                        let n = len(&mut rng, st.len());
                        status = anole_samples_init(
                            slots[i].ptr(),
                            ANOLE_SAMPLES_SIZE,
                            st.as_mut_ptr(),
                            n,
                            cap,
                            il,
                            tl,
                            &mut out,
                        );
                        slots[i].live = status == AnoleStatus::Ok;
                    } else {
                        let (p, fit) = in_pool(&mut rng, 4);
                        let (n1, n2) = (len(&mut rng, fit), len(&mut rng, fit));
                        status =
                            anole_samples_push(slots[i].ptr().cast(), p.cast(), n1, p.cast(), n2);
                    }
                }
                3..=12 => {
                    // A learner call with random arrays.
                    let (h, hs) = handle_arg(&mut rng, &mut slots, Kind::Learner, &mut copy);
                    expected = handle_status(h, hs, &slots, Kind::Learner);
                    let l: *mut AnoleLearner = h.cast();
                    let (x, xfit) = in_pool(&mut rng, 4);
                    let (y, yfit) = in_pool(&mut rng, 4);
                    let (xn, yn) = (len(&mut rng, xfit), len(&mut rng, yfit));
                    let (x, y) = (x.cast::<f32>(), y.cast::<f32>());
                    let mut f = 0.0f32;
                    let mut u = 0usize;
                    let (sh, _) = handle_arg(&mut rng, &mut slots, Kind::Samples, &mut copy);
                    status = match op {
                        3 => anole_learner_predict(l, x, xn, y, yn),
                        4 => anole_learner_adapt_arrays(
                            l,
                            x,
                            xn,
                            y,
                            yn,
                            rng.below(4) as u32,
                            std::ptr::null_mut(),
                        ),
                        5 => anole_learner_step(l, x, xn, y, yn, rng.float(), &mut f),
                        6 => anole_learner_loss_arrays(l, x, xn, y, yn, &mut f),
                        7 => anole_learner_classify(l, x, xn, &mut u),
                        8 => anole_learner_adapt(
                            l,
                            sh.cast(),
                            rng.below(4) as u32,
                            std::ptr::null_mut(),
                        ),
                        9 => anole_learner_loss(l, sh.cast(), &mut f),
                        10 if rng.chance(50) => {
                            anole_learner_init_prototypes_arrays(l, x, xn, y, yn)
                        }
                        10 => anole_learner_start_head_arrays(l, x, xn, y, yn),
                        11 => anole_learner_set_lr(l, rng.float()),
                        _ => {
                            let (o, ofit) = in_pool(&mut rng, 1);
                            let n = len(&mut rng, ofit);
                            anole_learner_export(l, o, n, &mut u)
                        }
                    };
                    if status != AnoleStatus::Ok && expected == Some(AnoleStatus::Ok) {
                        expected = None; // a live learner may refuse the arguments
                    }
                }
                13 => {
                    let (h, hs) = handle_arg(&mut rng, &mut slots, Kind::Learner, &mut copy);
                    expected = handle_status(h, hs, &slots, Kind::Learner);
                    let mut info = AnoleLearnerInfo::default();
                    status = match rng.below(3) {
                        0 => anole_learner_get_info(h.cast(), &mut info),
                        1 => anole_learner_reset(h.cast()),
                        _ => {
                            let (bh, _) = handle_arg(&mut rng, &mut slots, Kind::Blob, &mut copy);
                            anole_learner_load_params(h.cast(), bh.cast())
                        }
                    };
                    if status != AnoleStatus::Ok && expected == Some(AnoleStatus::Ok) {
                        expected = None;
                    }
                }
                14 => {
                    let (h, hs) = handle_arg(&mut rng, &mut slots, Kind::Blob, &mut copy);
                    expected = handle_status(h, hs, &slots, Kind::Blob);
                    let mut info = AnoleBlobInfo::default();
                    let mut n = 0usize;
                    let mut opts = AnoleLearnerOptions::default();
                    status = match rng.below(3) {
                        0 => anole_blob_get_info(h.cast(), &mut info),
                        1 => anole_learner_options_default(h.cast(), &mut opts),
                        _ => anole_arena_len(h.cast(), std::ptr::null(), &mut n),
                    };
                }
                15 => {
                    // Release a blob: refused while learners use it.
                    let (h, hs) = handle_arg(&mut rng, &mut slots, Kind::Blob, &mut copy);
                    expected = handle_status(h, hs, &slots, Kind::Blob);
                    status = anole_blob_release(h.cast());
                    if let (Some(i), AnoleStatus::Ok) = (hs, status) {
                        let users = (0..slots.len()).any(|j| {
                            slots[j].kind == Kind::Learner && slots[j].live && slots[j].link == i
                        });
                        assert!(!users, "a blob in use was released");
                        slots[i].live = false;
                    }
                    if expected == Some(AnoleStatus::Ok) && status == AnoleStatus::InUse {
                        expected = None;
                    }
                }
                16 => {
                    // Open or release the store.
                    let i = idx(Kind::Store, &slots)[0];
                    if slots[i].live {
                        status = anole_store_release(slots[i].ptr().cast());
                        expected = Some(AnoleStatus::Ok);
                        slots[i].live = false;
                    } else {
                        let fl = AnoleFlash {
                            context: flash.cast(),
                            read: Some(flash_read),
                            write: Some(flash_write),
                            erase: Some(flash_erase),
                            capacity: (*flash).data.len() as u32,
                            page_size: [4096, 2048, 4096, 4096, 1000][rng.below(5)],
                            write_size: [4, 8, 32, 4, 64][rng.below(5)],
                        };
                        let (start, end) = (
                            4096 * rng.below(3) as u32,
                            4096 * (4 + rng.below(22)) as u32,
                        );
                        let mut out = std::ptr::null_mut();
                        status = anole_store_open(
                            slots[i].ptr(),
                            ANOLE_STORE_SIZE,
                            &fl,
                            start,
                            end,
                            &mut out,
                        );
                        slots[i].live = status == AnoleStatus::Ok;
                    }
                }
                _ => {
                    // Save, load or clear through the store with a random learner argument.
                    let i = idx(Kind::Store, &slots)[0];
                    let (sh, ss) = (slots[i].ptr(), Some(i));
                    expected = handle_status(sh, ss, &slots, Kind::Store);
                    let (h, _) = handle_arg(&mut rng, &mut slots, Kind::Learner, &mut copy);
                    (*flash).fail_percent = [0, 0, 1, 20][rng.below(4)];
                    let n = if rng.chance(70) {
                        store_buf.len()
                    } else {
                        len(&mut rng, store_buf.len())
                    };
                    status = match rng.below(3) {
                        0 => anole_store_save(
                            sh.cast(),
                            h.cast(),
                            store_buf.as_mut_ptr(),
                            n,
                            std::ptr::null_mut(),
                        ),
                        1 => anole_store_load(
                            sh.cast(),
                            h.cast(),
                            store_buf.as_mut_ptr(),
                            n,
                            std::ptr::null_mut(),
                        ),
                        _ => anole_store_clear(sh.cast(), store_buf.as_mut_ptr(), n),
                    };
                    if status != AnoleStatus::Ok && expected == Some(AnoleStatus::Ok) {
                        expected = None;
                    }
                }
            }
        }
        if let Some(want) = expected {
            assert_eq!(status, want, "call {call}: op {op}");
        }
        counts[usize::from(status == AnoleStatus::Ok)] += 1;
        *by_status.entry(format!("{status:?}")).or_insert(0usize) += 1;
        // Every slot's last failure reads without panicking.
        for s in slots.iter_mut() {
            let mut text = [0 as std::ffi::c_char; 64];
            // SAFETY: the slot's memory, and a 64-byte buffer.
            let st = unsafe {
                anole_last_error(s.ptr(), text.as_mut_ptr(), text.len(), std::ptr::null_mut())
            };
            assert!(
                matches!(st, AnoleStatus::Ok | AnoleStatus::NotAHandle),
                "{st:?}"
            );
        }
    }
    println!("statuses of {} calls: {by_status:?}", counts[0] + counts[1]);
    // The random calls reached both outcomes often.
    assert!(counts[0] > 1000 && counts[1] > 1000, "{counts:?}");
    // SAFETY: the store was released or is never used again; the pointer came from a Box.
    drop(unsafe { Box::from_raw(flash) });
}
