//! Decoding a public model with forged lengths fails without reserving the memory they announce:
//! the largest allocation is bounded by a small multiple of the bytes received.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use masq_deploy::{DeployError, PublicModel};

/// The system allocator, noting the largest single request of each thread.
struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest allocation `f` makes on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(|l| l.get()))
}

fn varint(v: u64) -> Vec<u8> {
    bincode::encode_to_vec(v, bincode::config::standard()).unwrap()
}

#[test]
fn a_forged_length_reserves_nothing_it_announces() {
    let g = masq_ir::zoo::build("mnist_cnn", None, 0).unwrap();
    let genuine = PublicModel::of(&g).unwrap().bytes;
    let (back, _) = largest_allocation(|| PublicModel::decode(&genuine));
    assert!(back.is_ok());
    // Magic (8 bytes) and version (1), then the structure's length: forge it, and keep the rest.
    let (structure_len, width): (u64, usize) =
        bincode::decode_from_slice(&genuine[9..], bincode::config::standard()).unwrap();
    assert!(structure_len > 100);
    for blob in [
        // Everything but the structure, which claims to be 64 times as long as the blob.
        [&genuine[..9], &varint(64 * genuine.len() as u64), &genuine[9 + width..]].concat(),
        // A few bytes that claim a terabyte.
        [&genuine[..9], &varint(1 << 40), b"{}"].concat(),
    ] {
        let (r, largest) = largest_allocation(|| PublicModel::decode(&blob));
        let e = r.unwrap_err();
        assert!(
            matches!(&e, DeployError::BadPublicModel { reason } if reason.contains("announces more than")),
            "{e:?}"
        );
        // bincode's limit is at most 16 times the bytes received (1 KiB at least).
        assert!(largest <= (16 * blob.len()).max(1024), "{largest} bytes allocated for a {}-byte blob", blob.len());
    }
}
