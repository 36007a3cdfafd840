//! Store handles: the learner's adapted parameters kept in NOR flash through the caller's
//! read/write/erase callbacks, safe against power cuts (the runtime's `persist::Store`).
//!
//! The store works in pages of `ANOLE_FLASH_PAGE_SIZE` bytes, written in units of
//! `ANOLE_FLASH_WRITE_SIZE` bytes, fixed when the library is built: 4096 and 32 unless the
//! build sets the environment variables of those names (`anole_store_geometry` tells). A
//! flash whose erase page divides the store's page (the erase callback then erases several
//! pages) and whose write unit divides the store's (a write covers several units) works.

use crate::args::{self, Span, Spans};
use crate::failure::{FlashFailure, What};
use crate::handle::{self, kind, Slot};
use crate::learner::{self, AnoleLearner};
use crate::status::AnoleStatus;
use anole::persist::{Loaded, PersistError, Refused, Store};
use core::ffi::c_void;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use sequential_storage::map::MapConfigError;

/// A power-fail-safe parameter store (opaque) in a range of the caller's flash. Lives in
/// `ANOLE_STORE_SIZE` bytes of the caller's memory aligned to `ANOLE_HANDLE_ALIGN`.
pub struct AnoleStore {
    _opaque: [u8; 0],
}

/// Bytes of memory a store handle needs (`anole_store_open`).
#[cfg(target_pointer_width = "64")]
pub const ANOLE_STORE_SIZE: usize = 192;
/// Bytes of memory a store handle needs (`anole_store_open`).
#[cfg(target_pointer_width = "32")]
pub const ANOLE_STORE_SIZE: usize = 128;

/// `usize` from a decimal environment value given at build time, or `default`.
const fn build_setting(value: Option<&str>, default: usize) -> usize {
    let Some(s) = value else {
        return default;
    };
    let b = s.as_bytes();
    assert!(!b.is_empty(), "flash geometry setting is empty");
    let mut n = 0usize;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "flash geometry setting is not a decimal number"
        );
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    n
}

/// The store's page: what one erase covers (build setting `ANOLE_FLASH_PAGE_SIZE`).
const PAGE: usize = build_setting(option_env!("ANOLE_FLASH_PAGE_SIZE"), 4096);
/// The store's write unit (build setting `ANOLE_FLASH_WRITE_SIZE`).
const WORD: usize = build_setting(option_env!("ANOLE_FLASH_WRITE_SIZE"), 32);
const _: () = assert!(
    PAGE.is_power_of_two() && PAGE >= 512 && PAGE <= 1 << 24,
    "ANOLE_FLASH_PAGE_SIZE must be a power of two from 512 to 16 MiB"
);
const _: () = assert!(
    WORD.is_power_of_two() && WORD <= 32,
    "ANOLE_FLASH_WRITE_SIZE must be 1, 2, 4, 8, 16 or 32"
);

/// Reads `len` bytes at `offset` of the flash into `buf`; returns 0 on success, anything
/// else is an error (reported in `anole_last_error`).
pub type AnoleFlashRead = Option<
    unsafe extern "C" fn(context: *mut c_void, offset: u32, buf: *mut u8, len: usize) -> i32,
>;
/// Programs `len` bytes from `buf` at `offset` (offset and len are multiples of the store's
/// write size; the bytes were erased since they were last written); returns 0 on success.
pub type AnoleFlashWrite = Option<
    unsafe extern "C" fn(context: *mut c_void, offset: u32, buf: *const u8, len: usize) -> i32,
>;
/// Erases the bytes from `from` to `to` (both multiples of the store's page size) to 0xFF;
/// returns 0 on success.
pub type AnoleFlashErase =
    Option<unsafe extern "C" fn(context: *mut c_void, from: u32, to: u32) -> i32>;

/// A NOR flash as callbacks. Offsets count from the start of this flash. The callbacks run
/// during `anole_store_*` calls and must not call the library.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AnoleFlash {
    /// Passed to every callback.
    pub context: *mut c_void,
    /// Read callback.
    pub read: AnoleFlashRead,
    /// Write callback.
    pub write: AnoleFlashWrite,
    /// Erase callback.
    pub erase: AnoleFlashErase,
    /// Bytes of the flash.
    pub capacity: u32,
    /// The flash's erase page in bytes; must divide the store's page size.
    pub page_size: u32,
    /// The flash's write unit in bytes; must divide the store's write size.
    pub write_size: u32,
}

/// The callbacks, checked, as an `embedded-storage` NOR flash.
struct CFlash {
    context: *mut c_void,
    read: unsafe extern "C" fn(*mut c_void, u32, *mut u8, usize) -> i32,
    write: unsafe extern "C" fn(*mut c_void, u32, *const u8, usize) -> i32,
    erase: unsafe extern "C" fn(*mut c_void, u32, u32) -> i32,
    capacity: u32,
}

/// A failed flash operation.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CFlashError(FlashFailure);

impl NorFlashError for CFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self.0 {
            FlashFailure::Refused { .. } => NorFlashErrorKind::OutOfBounds,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl ErrorType for CFlash {
    type Error = CFlashError;
}

impl CFlash {
    /// Refuse an operation outside the flash or off its units.
    fn check(
        &self,
        op: &'static str,
        offset: u32,
        len: usize,
        unit: usize,
    ) -> Result<u32, CFlashError> {
        let refused = CFlashError(FlashFailure::Refused {
            op,
            offset,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
        let len32 = u32::try_from(len).map_err(|_| refused)?;
        let end = offset.checked_add(len32).ok_or(refused)?;
        if end > self.capacity || offset as usize % unit != 0 || len % unit != 0 {
            return Err(refused);
        }
        Ok(len32)
    }

    fn result(op: &'static str, offset: u32, len: u32, code: i32) -> Result<(), CFlashError> {
        if code == 0 {
            Ok(())
        } else {
            Err(CFlashError(FlashFailure::Callback {
                op,
                offset,
                len,
                code,
            }))
        }
    }
}

impl ReadNorFlash for CFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), CFlashError> {
        let len = self.check("read", offset, bytes.len(), 1)?;
        // SAFETY: the C contract of `AnoleFlash`: the callback writes at most `len` bytes
        // to `buf`, which is a valid writable buffer of that length.
        let code = unsafe { (self.read)(self.context, offset, bytes.as_mut_ptr(), bytes.len()) };
        Self::result("read", offset, len, code)
    }

    fn capacity(&self) -> usize {
        self.capacity as usize
    }
}

impl NorFlash for CFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), CFlashError> {
        let len = to
            .checked_sub(from)
            .ok_or(CFlashError(FlashFailure::Refused {
                op: "erase",
                offset: from,
                len: 0,
            }))?;
        self.check("erase", from, len as usize, PAGE)?;
        // SAFETY: the C contract of `AnoleFlash`; no memory is passed.
        let code = unsafe { (self.erase)(self.context, from, to) };
        Self::result("erase", from, len, code)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), CFlashError> {
        let len = self.check("write", offset, bytes.len(), WORD)?;
        // SAFETY: the C contract of `AnoleFlash`: the callback reads at most `len` bytes of
        // `buf`, a valid buffer of that length.
        let code = unsafe { (self.write)(self.context, offset, bytes.as_ptr(), bytes.len()) };
        Self::result("write", offset, len, code)
    }
}

/// What a store handle holds.
pub(crate) struct StoreValue {
    store: Store<CFlash>,
}

kind!(
    StoreKind,
    AnoleStore,
    StoreValue,
    b"anST",
    "store",
    "store",
    ANOLE_STORE_SIZE
);

/// What `anole_store_save` wrote.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AnoleSaved {
    /// Save counter of the new record (1 for the first save).
    pub generation: u32,
    /// Which half of the range holds it (0 or 1).
    pub half: u32,
    /// 1 if the half had to be erased and written again after an error, else 0.
    pub rewrote: u32,
    /// Bytes of the blob written.
    pub len: usize,
}

/// `anole_loaded.refused`: no record was refused (none saved, or the store was cleared).
pub const ANOLE_REFUSED_NONE: u32 = 0;
/// `anole_loaded.refused`: the newest record's head is corrupted.
pub const ANOLE_REFUSED_CORRUPT_HEAD: u32 = 1;
/// `anole_loaded.refused`: the newest record has another record format version.
pub const ANOLE_REFUSED_VERSION: u32 = 2;
/// `anole_loaded.refused`: the newest record was adapted from another meta-initialisation.
pub const ANOLE_REFUSED_OTHER_MODEL: u32 = 3;
/// `anole_loaded.refused`: the newest record's blob length differs from the learner's.
pub const ANOLE_REFUSED_LENGTH: u32 = 4;
/// `anole_loaded.refused`: the newest record is incomplete or corrupted (CRC).
pub const ANOLE_REFUSED_CRC: u32 = 5;
/// `anole_loaded.refused`: the newest record's blob does not parse or fit the learner
/// (`anole_loaded.blob_status` says why).
pub const ANOLE_REFUSED_BLOB: u32 = 6;
/// `anole_loaded.refused`: the flash map holding the record is unreadable.
pub const ANOLE_REFUSED_UNREADABLE: u32 = 7;

/// What `anole_store_load` put into the learner.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnoleLoaded {
    /// 1: the adapted parameters of save `generation`; 0: the learner was reset to the
    /// meta-initialisation (`refused` says why).
    pub adapted: u32,
    /// Save counter of the record loaded (when `adapted`).
    pub generation: u32,
    /// An `ANOLE_REFUSED_*` code: why the newest record in flash was not loaded.
    pub refused: u32,
    /// With `ANOLE_REFUSED_BLOB`: the status of the blob's refusal; else `ANOLE_STATUS_OK`.
    pub blob_status: AnoleStatus,
    /// Bytes of the stored blob (when `adapted`).
    pub len: usize,
}

impl AnoleLoaded {
    fn from(l: Loaded) -> AnoleLoaded {
        let mut out = AnoleLoaded {
            adapted: 0,
            generation: 0,
            refused: ANOLE_REFUSED_NONE,
            blob_status: AnoleStatus::Ok,
            len: 0,
        };
        match l {
            Loaded::Adapted { generation, len } => {
                out.adapted = 1;
                out.generation = generation;
                out.len = len;
            }
            Loaded::Initial { refused } => {
                out.refused = match refused {
                    None => ANOLE_REFUSED_NONE,
                    Some(Refused::CorruptHead) => ANOLE_REFUSED_CORRUPT_HEAD,
                    Some(Refused::Version { .. }) => ANOLE_REFUSED_VERSION,
                    Some(Refused::OtherModel { .. }) => ANOLE_REFUSED_OTHER_MODEL,
                    Some(Refused::Length { .. }) => ANOLE_REFUSED_LENGTH,
                    Some(Refused::Crc { .. }) => ANOLE_REFUSED_CRC,
                    Some(Refused::Blob(e)) => {
                        out.blob_status = crate::failure::runtime_status(&e);
                        ANOLE_REFUSED_BLOB
                    }
                    Some(Refused::Unreadable) => ANOLE_REFUSED_UNREADABLE,
                };
            }
        }
        out
    }
}

/// The failure of a store operation.
fn persist_failure(e: PersistError<CFlashError>) -> What {
    match e {
        PersistError::Config(c) => What::Range {
            why: match c {
                MapConfigError::StartRangeNotAtPageBoundary => {
                    "start is not a multiple of the page size"
                }
                MapConfigError::EndRangeNotAtPageBoundary => {
                    "end is not a multiple of the page size"
                }
                MapConfigError::RangeTooSmall => "fewer than 4 pages (2 per half)",
                MapConfigError::PagesTooSmall => "pages too small for the store",
                MapConfigError::WordSizeTooLarge => "write size larger than 32 bytes",
            },
        },
        PersistError::Flash(e) => What::Flash(match e {
            sequential_storage::Error::Storage { value, .. } => value.0,
            sequential_storage::Error::FullStorage => FlashFailure::Store {
                what: "the range is full (too small for this blob)",
            },
            sequential_storage::Error::Corrupted { .. } => FlashFailure::Store {
                what: "corrupted beyond repair, even after erasing the half being written",
            },
            _ => FlashFailure::Store {
                what: "the flash map refused the operation",
            },
        }),
        PersistError::BufferTooSmall { needed, available } => {
            What::StoreBuffer { needed, available }
        }
        PersistError::RangeTooSmall { needed, pages } => What::StoreRange { needed, pages },
        PersistError::TooLarge { .. } => What::Runtime(anole::Error::TooLarge {
            what: "blob for the flash store",
        }),
        PersistError::Export(e) => What::Runtime(e),
        PersistError::Verify(r) => What::Verify(r),
    }
}

/// The store's page and write sizes, into `*page_size` and `*write_size` (either may be
/// NULL).
///
/// # Safety
/// `page_size` and `write_size` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_geometry(
    page_size: *mut u32,
    write_size: *mut u32,
) -> AnoleStatus {
    for (p, v, arg) in [
        (page_size, PAGE, "page_size"),
        (write_size, WORD, "write_size"),
    ] {
        if p.is_null() {
            continue;
        }
        match args::out(p, arg) {
            // SAFETY: non-NULL, aligned, writable by the contract. The two outputs may be the
            // same variable: each is a whole write.
            Ok(p) => unsafe { args::put(p, v as u32) },
            Err(w) => return w.status(),
        }
    }
    AnoleStatus::Ok
}

/// Write `v` to the output `p` of a call that takes no handle.
///
/// # Safety
/// `p` is NULL or writable.
unsafe fn answer<T>(p: *mut T, arg: &'static str, v: T) -> AnoleStatus {
    match args::out(p, arg) {
        // SAFETY: checked, writable by the contract.
        Ok(p) => unsafe { args::put(p, v) },
        Err(w) => return w.status(),
    }
    AnoleStatus::Ok
}

/// Bytes of the buffer `anole_store_save`, `anole_store_load` and `anole_store_clear` need
/// for a blob of `blob_len` bytes (`anole_learner_export_len`; 0 for clear), into `*len`.
///
/// # Safety
/// `len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_buffer_len(blob_len: usize, len: *mut usize) -> AnoleStatus {
    // SAFETY: the caller's contract.
    unsafe { answer(len, "len", Store::<CFlash>::buffer_len(blob_len)) }
}

/// Pages of the store's size a range needs for a blob of `blob_len` bytes, into `*pages`.
///
/// # Safety
/// `pages` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_pages_needed(
    blob_len: usize,
    pages: *mut usize,
) -> AnoleStatus {
    // SAFETY: the caller's contract.
    unsafe { answer(pages, "pages", Store::<CFlash>::pages_needed(blob_len)) }
}

/// Open a store on bytes `start` to `end` of `flash` (multiples of the store's page size, at
/// least 4 pages, split in two halves) in `mem` (`ANOLE_STORE_SIZE` bytes aligned to
/// `ANOLE_HANDLE_ALIGN`); `*out` becomes the handle, or NULL on failure. Nothing is written
/// until a save or clear. The range must not hold the firmware or the meta-initialisation.
/// `*flash` is copied; its context must stay valid until `anole_store_release`.
///
/// # Safety
/// `mem`: NULL or `mem_len` writable bytes; `flash`: NULL or readable, with callbacks that
/// follow their contracts; `out`: NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_open(
    mem: *mut c_void,
    mem_len: usize,
    flash: *const AnoleFlash,
    start: u32,
    end: u32,
    out: *mut *mut AnoleStore,
) -> AnoleStatus {
    let init = |s: *mut Slot<StoreValue>| -> Result<(), What> {
        let f = args::out(flash.cast_mut(), "flash")?;
        let mut spans = Spans::new();
        spans
            .add(Span::new(
                mem as usize,
                mem_len,
                "the handle's memory",
                true,
            ))
            .add(Span::one(f, "flash", false));
        spans.check()?;
        // SAFETY: non-NULL, aligned, readable by the contract; the function pointers are
        // `Option`s, so NULL is a value.
        let f = unsafe { f.read() };
        let (Some(read), Some(write), Some(erase)) = (f.read, f.write, f.erase) else {
            let arg = match (f.read, f.write) {
                (None, _) => "flash.read",
                (_, None) => "flash.write",
                _ => "flash.erase",
            };
            return Err(What::Null { arg });
        };
        for (what, flash, store) in [
            ("page size", f.page_size, PAGE as u32),
            ("write size", f.write_size, WORD as u32),
        ] {
            if flash == 0 || store % flash != 0 {
                return Err(What::Geometry { what, flash, store });
            }
        }
        if end > f.capacity {
            return Err(What::Capacity {
                end,
                capacity: f.capacity,
            });
        }
        let flash = CFlash {
            context: f.context,
            read,
            write,
            erase,
            capacity: f.capacity,
        };
        let store = Store::new(flash, start..end).map_err(persist_failure)?;
        // SAFETY: `s` was claimed: its value is writable.
        unsafe { Slot::value(s).write(StoreValue { store }) };
        Ok(())
    };
    // SAFETY: the caller's contract on `mem` and `out`; `init` checks its own arguments.
    unsafe { handle::create::<StoreKind>(mem, mem_len, out, "anole_store_open", init) }
}

/// Run `f` on the store `p` and the learner `l` (both marked busy: a callback cannot reach
/// them), with `buf` (`buf_len` bytes); its answer goes to `out` unless that is NULL.
///
/// # Safety
/// `p` and `l` follow the handle contract; `buf` is NULL or `buf_len` writable bytes; `out`
/// is NULL or writable.
unsafe fn with_learner<T>(
    p: *mut AnoleStore,
    l: *mut AnoleLearner,
    buf: *mut u8,
    buf_len: usize,
    (out, out_arg): (*mut T, &'static str),
    func: &'static str,
    f: impl FnOnce(&mut Store<CFlash>, *mut Slot<learner::LearnerValue>, &mut [u8]) -> Result<T, What>,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<StoreKind>(p, func, |s| {
            let (ls, mut spans) = learner::checked(l, "learner")?;
            let b = args::array(buf.cast_const(), buf_len, "buf")?;
            spans
                .add(handle::region::<StoreKind>(s, true))
                .array(&b, "buf", true);
            let out = args::optional_out(out, out_arg, &mut spans)?;
            spans.check()?;
            Slot::set_busy(ls, true);
            // SAFETY: live and busy: the only reference to the store's value.
            let r = f(&mut (*Slot::value(s)).store, ls, b.get_mut());
            Slot::set_busy(ls, false);
            let v = r?;
            if !out.is_null() {
                args::put(out, v);
            }
            Ok(())
        })
    }
}

/// Save the learner's current parameters as the newest record, and read it back. If power
/// is cut before this returns, the next load finds the previous record or this one, whole.
/// `buf` needs `anole_store_buffer_len(export_len)` bytes (aligned as the flash driver
/// wants: the first bytes are handed to the callbacks). `saved` (NULL: not wanted) gets what
/// was written. The learner must be the store's model (or a load refuses the record).
///
/// # Safety
/// `store` and `learner` follow the handle contract; `buf` is NULL or `buf_len` writable
/// bytes; `saved` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_save(
    store: *mut AnoleStore,
    learner: *mut AnoleLearner,
    buf: *mut u8,
    buf_len: usize,
    saved: *mut AnoleSaved,
) -> AnoleStatus {
    let out = (saved, "saved");
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_learner(
            store,
            learner,
            buf,
            buf_len,
            out,
            "anole_store_save",
            |st, ls, buf| {
                // SAFETY: live learner, marked busy; shared access only.
                let l = &(*Slot::value(ls)).learner;
                let r = st.save(l, buf).map_err(persist_failure)?;
                Ok(AnoleSaved {
                    generation: r.generation,
                    half: r.half as u32,
                    rewrote: u32::from(r.rewrote),
                    len: r.len,
                })
            },
        )
    }
}

/// Load the newest valid record into the learner, or reset the learner to its
/// meta-initialisation if there is none; `loaded` (NULL: not wanted) says which, and why a
/// record was refused. Flash errors while reading make a record count as refused, so the
/// learner always comes out usable. `buf` as for `anole_store_save`.
///
/// # Safety
/// As `anole_store_save`; `loaded` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn anole_store_load(
    store: *mut AnoleStore,
    learner: *mut AnoleLearner,
    buf: *mut u8,
    buf_len: usize,
    loaded: *mut AnoleLoaded,
) -> AnoleStatus {
    let out = (loaded, "loaded");
    // SAFETY: the caller's contract, passed on.
    unsafe {
        with_learner(
            store,
            learner,
            buf,
            buf_len,
            out,
            "anole_store_load",
            |st, ls, buf| {
                // SAFETY: live learner, marked busy: the only reference to its value.
                let l = &mut (*Slot::value(ls)).learner;
                let r = st.load_into(l, buf).map_err(persist_failure)?;
                Ok(AnoleLoaded::from(r))
            },
        )
    }
}

/// Forget the saved parameters: the next load gives the meta-initialisation. `buf` needs
/// `anole_store_buffer_len(0)` bytes.
///
/// # Safety
/// `store` follows the handle contract; `buf` is NULL or `buf_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn anole_store_clear(
    store: *mut AnoleStore,
    buf: *mut u8,
    buf_len: usize,
) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<StoreKind>(store, "anole_store_clear", |s| {
            let b = args::array(buf.cast_const(), buf_len, "buf")?;
            let mut spans = Spans::new();
            spans
                .add(handle::region::<StoreKind>(s, true))
                .array(&b, "buf", true);
            spans.check()?;
            // SAFETY: live and busy: the only reference to the value.
            let store = &mut (*Slot::value(s)).store;
            store.clear(b.get_mut()).map_err(persist_failure)
        })
    }
}

/// Release the store: its memory is the caller's again (the flash keeps the records).
///
/// # Safety
/// `store` follows the handle contract.
#[no_mangle]
pub unsafe extern "C" fn anole_store_release(store: *mut AnoleStore) -> AnoleStatus {
    // SAFETY: the handle contract.
    unsafe {
        handle::call::<StoreKind>(store, "anole_store_release", |s| {
            // SAFETY: live.
            Slot::release(s);
            Ok(())
        })
    }
}
