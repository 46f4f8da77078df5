"""The classification rules: which frame belongs to which class, and on whose authority.

Each :class:`Rule` names a class, a pattern for the frame's symbol and/or its mapped file
(``dso``: a shared library's path, ``[kernel.kallsyms]``, or for py-spy a Python file), and
the source saying the pattern belongs to that library or crate. A frame takes the class of
the first rule that matches it (so decoders come before the library's catch-all), and the
sample takes a class from its frames by the policy in :mod:`profiler.collect.cpu.classify`.

Symbol patterns are matched at the start of the demangled symbol (``re.match``); file
patterns anywhere in the path (``re.search``). Rust symbols are demangled by perf into
``crate::module::item`` paths; crate names below are cited by their line in Hydra's
Cargo.lock at 14332fbf55470184984bf76488960741510971d0 (the ``name = "..."`` line). Nix's
are cited in NixOS/nix at 88b09c64fbea076a0376830d98e5331f70ed31a3.
"""

from __future__ import annotations

from typing import NamedTuple

DOMAINS = ("compression", "decompression", "hashing", "nar", "network", "database")
MECHANISMS = ("filesystem", "allocation", "runtime")
CLASSES = (*DOMAINS, *MECHANISMS, "other")

HYDRA_LOCK = "NixOS/hydra@14332fbf Cargo.lock:"
NIX = "NixOS/nix@88b09c64 "


class Rule(NamedTuple):
    """Frames whose symbol matches ``symbol`` (and file matches ``dso``) are ``cls``."""

    cls: str
    symbol: str | None
    dso: str | None
    source: str
    weak: bool = False  # by library alone (stripped): yields to a named domain further out


def _r(cls: str, symbol: str | None, dso: str | None, source: str, *, weak: bool = False) -> Rule:
    return Rule(cls, symbol, dso, source, weak)


def _lib(cls: str, dso: str, source: str) -> Rule:
    """A frame of a stripped library, known only by the file it is mapped from."""
    return Rule(cls, None, dso, source, weak=True)


_DECODE = "decompression"
_ENCODE = "compression"

# --- compression and decompression: the C libraries, Nix's sinks, the Rust crates ----------
CODECS = [
    # liblzma (xz-utils src/liblzma/api/lzma/*.h): decoders are lzma_*decoder*/lzma_*decode*
    _r(_DECODE, r"lzma_\w*decode", None, "liblzma: xz-utils src/liblzma/*/…_decoder.c"),
    _r(
        _ENCODE,
        r"lzma_\w*(encode|easy_|mf_|lz_encoder)",
        None,
        "liblzma: xz-utils src/liblzma/*/…_encoder.c",
    ),
    # lzma_code, lzma_end and the helpers both directions share: a direction further out
    # decides, else (a writer's profile) compression
    _r(_ENCODE, r"lzma_", None, "liblzma: xz-utils src/liblzma/common/", weak=True),
    # a stripped liblzma shows only its file: cannot tell the direction; a writer's profile
    # (Hydra uploading NARs) spends it compressing
    _lib(_ENCODE, r"(^|/)liblzma\.so", "liblzma.so (Debian liblzma5; stripped: by library)"),
    # libzstd (zstd lib/decompress/*.c, lib/compress/*.c); python-zstandard bundles it
    _r(
        _DECODE,
        r"(ZSTD_decompress|ZSTD_decode|ZSTD_DCtx|ZSTD_DDict|ZSTD_execSequence|ZSTD_buildFSETable"
        r"|ZSTD_getFrame|ZSTD_initDStream|ZSTD_DStream|HUF_decompress|HUF_readDTable|FSE_decompress"
        r"|FSE_buildDTable|BIT_initDStream|BIT_reloadDStream|ZSTDv0)",
        None,
        "libzstd: zstd lib/decompress/ (and lib/legacy/)",
    ),
    _r(
        _ENCODE,
        r"(ZSTD_compress|ZSTD_CCtx|ZSTD_CStream|ZSTD_initCStream|ZSTD_endStream|ZSTD_flushStream"
        r"|ZSTD_encode|ZSTD_buildCTable|ZSTD_RowFindBestMatch|ZSTD_BtFindBestMatch|ZSTD_DUBT_"
        r"|ZSTD_HcFindBestMatch|ZSTD_insert|ZSTD_update|ZSTD_fillHashTable|ZSTD_fillDoubleHash"
        r"|ZSTD_ldm_|ZSTD_opt|ZSTD_btGetAllMatches|ZSTD_searchMax|ZSTD_count|ZSTD_splitBlock"
        r"|ZSTD_seqToCodes|ZSTD_entropyCompress|ZSTD_buildSeqStore|ZSTD_selectEncodingType"
        r"|HUF_compress|HUF_buildCTable|FSE_compress|FSE_buildCTable|HIST_|ZSTDMT_)",
        None,
        "libzstd: zstd lib/compress/",
    ),
    # helpers both directions share (ZSTD_wildcopy, ZSTD_copy16, XXH64 in lib/common/):
    # the direction further out decides
    _r(
        _ENCODE,
        r"(ZSTD_|HUF_|FSE_|POOL_|XXH|ZSTD_XXH)",
        None,
        "libzstd: zstd lib/common/",
        weak=True,
    ),
    _lib(_ENCODE, r"(^|/)libzstd\.so", "libzstd.so (Debian libzstd1; stripped: by library)"),
    # Debian's zstd program links libzstd statically (`ldd /usr/bin/zstd` lists no libzstd;
    # zstd 1.5.4, Debian 12): its stripped frames are the library's (zstd -d would count as
    # compression: the direction is not in the file's name)
    _lib(
        _ENCODE, r"(^|/)(zstd|zstdmt|pzstd)$", "Debian zstd: programs/ linked with lib/ statically"
    ),
    # brotli (google/brotli c/include/brotli/{encode,decode}.h)
    _r(_DECODE, r"(BrotliDecoder|BrotliDecompress|BrotliSafe|BrotliBuildHuffman)", None, "brotli"),
    _r(_ENCODE, r"(BrotliEncoder|BrotliCompress|Brotli)", None, "brotli c/enc/"),
    _lib(_DECODE, r"(^|/)libbrotlidec\.so", "libbrotlidec.so (Debian libbrotli1)"),
    _lib(_ENCODE, r"(^|/)libbrotlienc\.so", "libbrotlienc.so (Debian libbrotli1)"),
    # bzip2 (bzlib.h; decompress.c)
    _r(
        _DECODE,
        r"(BZ2_bzDecompress|BZ2_decompress|BZ2_bzBuffToBuffDecompress|BZ2_bzRead)",
        None,
        "bzip2 decompress.c",
    ),
    _r(_ENCODE, r"BZ2_", None, "bzip2 compress.c, blocksort.c"),
    _lib(_ENCODE, r"(^|/)libbz2\.so", "libbz2.so (Debian libbz2-1.0)"),
    # zlib (zlib.h): inflate* decodes, deflate* and its helpers encode
    _r(_DECODE, r"(inflate|inflate_fast|inflate_table)\w*", None, "zlib inflate.c, inffast.c"),
    _r(
        _ENCODE,
        r"(deflate\w*|_tr_\w+|longest_match|fill_window|compress_block)$",
        None,
        "zlib deflate.c, trees.c",
    ),
    _lib(_ENCODE, r"(^|/)libz\.so", "libz.so (Debian zlib1g; stripped: by library)"),
    # Nix's own sinks (src/libutil/compression.cc): decompress :257, makeDecompressionSink :266,
    # ArchiveDecompressionSource :46, BrotliDecompressionSink :206; compressors :98 :281 :354 :458
    _r(
        _DECODE,
        r"nix::(\w*Decompression\w*|decompress)",
        None,
        NIX + "src/libutil/compression.cc:46,206,257,266",
    ),
    _r(
        _ENCODE,
        r"nix::(\w*CompressionSink|makeCompressionSink|compress)\b",
        None,
        NIX + "src/libutil/compression.cc:29,98,281,354,458,476",
    ),
    # Rust crates
    _r(
        _DECODE,
        r"<?(zstd|zstd_safe)::\S*(decode|Decode|DCtx|DStream)",
        None,
        HYDRA_LOCK + "5736,5745",
    ),
    _r(_ENCODE, r"<?(zstd|zstd_safe)::", None, HYDRA_LOCK + "5736,5745"),
    _r(_DECODE, r"<?async_compression::\S*(decode|Decode)", None, HYDRA_LOCK + "148"),
    _r(_ENCODE, r"<?async_compression::", None, HYDRA_LOCK + "148"),
    _r(_DECODE, r"<?(liblzma|xz2)::\S*(decode|Decode|read::XzDecoder)", None, HYDRA_LOCK + "2426"),
    _r(_ENCODE, r"<?(liblzma|xz2)::", None, HYDRA_LOCK + "2426"),
    _r(_DECODE, r"<?(brotli_decompressor|brotli::dec)", None, HYDRA_LOCK + "563"),
    _r(_ENCODE, r"<?brotli::", None, HYDRA_LOCK + "552"),
    _r(_DECODE, r"<?(flate2|bzip2)::\S*(decode|Decode|Decompress)", None, HYDRA_LOCK + "1221,649"),
    _r(_ENCODE, r"<?(flate2|bzip2)::", None, HYDRA_LOCK + "1221,649"),
    _r(
        _ENCODE,
        r"<?binary_cache::compression::",
        None,
        "NixOS/hydra@14332fbf subprojects/crates/binary-cache/src/compression.rs",
    ),
    # CPython's _lzma module (Modules/_lzmamodule.c): the direction of a stripped liblzma
    _r(
        _DECODE,
        r"(_lzma_LZMADecompressor\w*|decompress_buf|_lzma__decode_filter_properties)",
        None,
        "CPython Modules/_lzmamodule.c",
    ),
    _r(
        _ENCODE,
        r"(_lzma_LZMACompressor\w*|compress)$",
        r"_lzma\.cpython",
        "CPython Modules/_lzmamodule.c",
    ),
    # Python frames (py-spy): the standard library's lzma module, python-zstandard
    _r(
        _DECODE,
        r"(decompress|LZMADecompressor|ZstdDecompressor|decompressobj|read)",
        r"(^|/)(lzma|zstandard/\w+|bz2|gzip|zlib)\.py",
        "CPython Lib/lzma.py; python-zstandard",
    ),
    _r(
        _ENCODE,
        None,
        r"(^|/)(lzma|zstandard/\w+|bz2|gzip)\.py",
        "CPython Lib/lzma.py; python-zstandard",
    ),
]

# --- hashing ----------------------------------------------------------------------------------
HASHING = [
    # OpenSSL libcrypto (crypto/sha/sha256.c, asm sha256-x86_64.pl: sha256_block_data_order*)
    _r(
        "hashing",
        r"(SHA(1|224|256|384|512)_|sha(1|256|512)_block_data_order|ossl_sha|EVP_Digest|MD5_|md5_block|BLAKE2)",
        None,
        "OpenSSL crypto/sha/, crypto/md5/",
    ),
    _r("hashing", r"(_?sha256_|_?sha512_|SHA256|SHA512)", None, "libnettle/libgcrypt sha2"),
    # Nix: HashSink (src/libutil/include/nix/util/hash.hh:225, hash.cc:397), hashString/hashFile
    _r(
        "hashing",
        r"nix::(\w*HashSink|hashString|hashFile|hashPath|Hash::|Hash\b)",
        None,
        NIX + "src/libutil/hash.cc:397, include/nix/util/hash.hh:225",
    ),
    _r(
        "hashing",
        r"<?(sha2|sha1|md5|md_5|blake3|digest)::",
        None,
        HYDRA_LOCK + "3939,3917,2541,496",
    ),
    _r("hashing", r"<?ring::digest|ring_core_\S*sha", None, HYDRA_LOCK + "3576"),
    _r(
        "hashing",
        r"<?binary_cache::streaming_hash::",
        None,
        "NixOS/hydra@14332fbf subprojects/crates/binary-cache/src/streaming_hash.rs",
    ),
    _r("hashing", None, r"(^|/)hashlib\.py", "CPython Lib/hashlib.py"),
    # libcrypto unsymbolised: digests (Nix's HashSink, hashlib) or TLS ciphers; a libssl
    # or HTTP frame further out makes it network (weak)
    _lib("hashing", r"(^|/)libcrypto\.so", "OpenSSL libcrypto (stripped: by library)"),
]

# --- NAR serialisation --------------------------------------------------------------------------
NAR = [
    # Nix: dumpPath (src/libutil/archive.cc:45,131), parseDump :296, restorePath :310,
    # NarAccessor (include/nix/util/nar-accessor.hh:17)
    _r(
        "nar",
        r"nix::(\w+::)?(dumpPath|dumpString|dumpContents|parseDump|restorePath|copyNAR|\w*NarAccessor|makeNarAccessor|narFromPath|parse\b)",
        None,
        NIX + "src/libutil/archive.cc:45,131,296,310",
    ),
    _r("nar", r"<?(harmonia_file_nar|harmonia_nar|nix_compat::nar)", None, HYDRA_LOCK + "1492"),
    _r("nar", r"<?store_transfer::", None, HYDRA_LOCK + "4261"),
    _r("nar", None, r"(^|/)profiler/nar/", "hydra-profiler's NAR writer (profiler/nar)"),
]

# --- network and TLS ----------------------------------------------------------------------------
NETWORK = [
    _r("network", r"(SSL_|ssl3_|tls1_|tls13_|tls_|ossl_ssl|dtls)", None, "OpenSSL libssl"),
    _r(
        "network",
        r"(aesni_|aes_gcm|gcm_|ossl_gcm|CRYPTO_gcm|ChaCha20|chacha20_|Poly1305|poly1305_|_aesni_ctr32)",
        None,
        "OpenSSL libcrypto ciphers (TLS records)",
    ),
    _r("network", r"(curl_|Curl_)", None, "libcurl"),
    _lib(
        "network",
        r"(^|/)(libssl|libcurl|libnghttp2|libgnutls|libaws-c-\w+|libaws-cpp-sdk-\w+|libs2n)\.so",
        "TLS/HTTP/AWS SDK libraries",
    ),
    _r(
        "network",
        r"<?(hyper|hyper_util|h2|rustls|tokio_rustls|hyper_rustls|reqwest|tonic|tower|aws_sigv4|aws_smithy_\w+|object_store|webpki|rustls_webpki|prost)::",
        None,
        HYDRA_LOCK + "2081,2133,1463,3703,4549,2103,3500,4635,4743,232,2763,3740,3163",
    ),
    _r(
        "network",
        r"<?ring::(aead|hkdf|hmac|agreement|signature|rsa|ec)|ring_core_\S*(aes|gcm|chacha|poly1305|x25519|p256|p384|bn_)",
        None,
        HYDRA_LOCK + "3576",
    ),
    # kernel networking (net/ipv4/tcp*.c, net/socket.c, net/unix/af_unix.c)
    _r(
        "network",
        r"(tcp_|__tcp_|tcp_v4_|tcp_v6_|inet_|inet6_|ip_|ip6_|__ip_|udp_|__sys_(sendto|recvfrom|sendmsg|recvmsg|connect|accept4?)|sock_|__sock_|sk_|skb_|__skb_|__x64_sys_(sendto|recvfrom|sendmsg|recvmsg|connect|accept4?|socket)|unix_stream_|unix_dgram_|net_rx_action|__netif_|netif_|__dev_queue_xmit|dev_hard_start_xmit|loopback_xmit|__napi_poll|process_backlog|__release_sock|release_sock|lock_sock)",
        r"\[kernel",
        "Linux net/ (tcp, ip, socket, af_unix)",
    ),
    _r(
        "network",
        r"(send|recv|sendto|recvfrom|sendmsg|recvmsg|connect|accept4?|__libc_(send|recv)\w*|getaddrinfo)$",
        r"(^|/)libc\.so",
        "glibc socket calls",
    ),
    _r(
        "network",
        None,
        r"(^|/)(socket|ssl|selectors|socketserver)\.py|(^|/)(http|urllib)/",
        "CPython Lib/socket.py, ssl.py, http/, urllib/",
    ),
]

# --- database -------------------------------------------------------------------------------------
DATABASE = [
    _r("database", r"(PQ|pq[A-Z]|pqxx::)", None, "libpq (fe-exec.c, fe-protocol3.c), libpqxx"),
    _lib("database", r"(^|/)(libpq|libpqxx[-\w.]*)\.so", "libpq5, libpqxx"),
    _r("database", r"<?(sqlx|sqlx_core|sqlx_postgres|db)::", None, HYDRA_LOCK + "4058,4187,1002"),
    _r("database", None, r"(^|/)(psycopg|psycopg2|psycopg_c|psycopg_binary)/", "psycopg"),
]

# --- mechanisms ---------------------------------------------------------------------------------
FILESYSTEM = [
    _r(
        "filesystem",
        r"(ksys_(read|write|pread64|pwrite64|lseek)|vfs_\w+|__x64_sys_(read|write|pread64|pwrite64|readv|writev|preadv2?|pwritev2?|fsync|fdatasync|sync_file_range|openat2?|open|close|newfstatat|fstat|statx|getdents64|lseek|copy_file_range|sendfile64|renameat2?|unlinkat|mkdirat|fchmodat|utimensat|fallocate|ftruncate)|do_sys_open\w*|do_filp_open|path_openat|link_path_walk|ext4_\w+|xfs_\w+|btrfs_\w+|ovl_\w+|fuse_\w+|nfs_\w+|filemap_\w+|generic_perform_write|generic_file_\w+|iomap_\w+|do_fsync|file_write_and_wait_range|jbd2_\w+|__fput|dput|iput|d_alloc\w*|lookup_\w+|walk_component|shmem_\w+|page_cache_\w+|copy_page_(to|from)_iter|_copy_(to|from)_iter|rep_movs_alternative|copy_user_\w+)",
        r"\[kernel",
        "Linux fs/ and mm/filemap.c",
    ),
    _r(
        "filesystem",
        r"(read|write|pread64|pwrite64|readv|writev|fsync|fdatasync|open64|__open64|openat64|__openat64|open|close|__close|__libc_(read|write|open64|close)|__GI___libc_(read|write|open64|close)|fstat|__fstat\w*|fstatat\w*|statx|__getdents\w*|readdir\w*|lseek\w*|copy_file_range|sendfile\w*|rename|unlink|mkdir|ftruncate\w*|posix_fallocate\w*|fallocate\w*)$",
        r"(^|/)libc\.so",
        "glibc file calls",
    ),
    _r(
        "filesystem",
        r"<?(std::fs::|std::sys::(pal::)?unix::fs::|std::sys::fs::|tokio::fs::)",
        None,
        HYDRA_LOCK + "4521 (tokio::fs); Rust std::fs",
    ),
    _r(
        "filesystem",
        None,
        r"(^|/)(shutil|pathlib|tempfile|genericpath|posixpath)\.py",
        "CPython Lib/shutil.py, pathlib.py",
    ),
]

ALLOCATION = [
    _r(
        "allocation",
        r"(malloc|free|calloc|realloc|cfree|_int_malloc|_int_free\w*|_int_realloc|_int_memalign|malloc_consolidate|unlink_chunk|sysmalloc|systrim|tcache_\w+|__libc_(malloc|free|calloc|realloc|memalign)|aligned_alloc|posix_memalign|memalign|arena_get2|__default_morecore|alloc_perturb)$",
        r"(^|/)libc\.so",
        "glibc malloc/malloc.c",
    ),
    _r("allocation", r"(operator new|operator delete)", None, "libstdc++ new_op.cc, del_op.cc"),
    _r(
        "allocation",
        r"(je_|_rjem_|tikv_jemallocator::|tikv_jemalloc_sys::|mi_|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_alloc|__rdl_dealloc|__rdl_realloc|alloc::alloc::|alloc::raw_vec::)",
        None,
        HYDRA_LOCK + "4456,4446 (tikv-jemallocator); Rust alloc",
    ),
    _lib(
        "allocation", r"(^|/)lib(jemalloc|mimalloc|tcmalloc\w*)\.so", "jemalloc, mimalloc, tcmalloc"
    ),
    _r(
        "allocation",
        r"(PyObject_Malloc|PyObject_Free|PyObject_Realloc|PyObject_Calloc|_PyObject_Malloc|_PyObject_Free|_PyObject_Realloc|PyMem_\w+|_PyMem_\w+|pymalloc_\w+|_PyBytes_Resize|PyBytes_FromStringAndSize)$",
        None,
        "CPython Objects/obmalloc.c, bytesobject.c",
    ),
    # the kernel's side of memory: page faults and mappings (mm/memory.c, mm/mmap.c)
    _r(
        "allocation",
        r"(asm_exc_page_fault|exc_page_fault|do_user_addr_fault|handle_mm_fault|__handle_mm_fault|do_anonymous_page|do_wp_page|wp_page_copy|do_huge_pmd_\w+|clear_page\w*|clear_huge_page|folio_\w+|__folio_\w+|alloc_pages\w*|__alloc_pages\w*|__alloc_frozen_pages\w*|alloc_frozen_pages\w*|vma_alloc_folio\w*|get_page_from_freelist|rmqueue\w*|free_pages\w*|__free_pages\w*|free_unref_\w+|free_pcppages_bulk|release_pages|folios_put\w*|lru_\w+|__lruvec_\w+|mem_cgroup_\w+|__mem_cgroup_\w+|__mod_\w+|ptep_clear_flush|flush_tlb_\w+|native_flush_tlb_\w+|tlb_\w+|zap_\w+|unmap_\w+|do_vmi_\w+|__do_munmap|do_mmap|mmap_region|__mmap_region|__x64_sys_(mmap|munmap|brk|madvise|mremap|mprotect)|do_madvise|do_brk_flags|__vm_munmap|vm_mmap_pgoff|ksys_mmap_pgoff|set_pte_range|pte_alloc\w*|__pte_alloc)",
        r"\[kernel",
        "Linux mm/memory.c, mm/mmap.c, mm/page_alloc.c",
    ),
]

RUNTIME = [
    _r(
        "runtime",
        r"<?(tokio|tokio_util|tokio_stream|mio|futures_\w+|futures|crossbeam_\w+|parking_lot\w*|rayon\w*)::",
        None,
        HYDRA_LOCK + "4521,4571,4559,2588",
    ),
    _r(
        "runtime",
        r"<?(std::thread::|std::sys::(pal::)?unix::(thread|futex|locks)|std::sys::sync::|std::sync::|std::rt::|core::ops::function::FnOnce::call_once)",
        None,
        "Rust std threads and locks",
    ),
    _r(
        "runtime",
        r"(__pthread_\w+|pthread_\w+|start_thread|clone3?|__clone3?|__futex\w*|futex_\w+|__lll_lock_\w+|__lll_\w+|lll_\w+|syscall|epoll_wait|epoll_pwait2?|__poll|poll|ppoll|select|pselect6?|nanosleep|__nanosleep|clock_nanosleep\w*|__GI___clock_nanosleep\w*|sched_yield|__sched_yield|std::thread::_State_impl\S*|std::condition_variable::\w+|std::mutex::\w+)$",
        r"(^|/)(libc|libpthread|libstdc\+\+)\.so",
        "glibc nptl, libstdc++ threads",
    ),
    _r(
        "runtime",
        r"(__x64_sys_futex|do_futex|futex_\w+|__futex_\w+|__x64_sys_(epoll_wait|epoll_pwait2?|poll|ppoll|select|pselect6|nanosleep|clock_nanosleep|sched_yield)|do_epoll_wait|ep_poll|do_sys_poll|do_select|core_sys_select|schedule\w*|__schedule|finish_task_switch\w*|do_nanosleep|hrtimer_nanosleep|do_sched_yield|pick_next_task\w*|try_to_wake_up|wake_up_q|__wake_up\w*|enqueue_task\w*|dequeue_task\w*|update_curr\w*|psi_\w+)",
        r"\[kernel",
        "Linux kernel/futex/, kernel/sched/, fs/eventpoll.c",
    ),
    _r(
        "runtime",
        r"(_PyEval_\w+|PyEval_\w+|_Py\w+|Py[A-Z]\w*|take_gil|drop_gil|PyThread_\w+|method_vectorcall\w*|cfunction_\w+|vectorcall_\w+|slot_tp_\w+|builtin_\w+|call_function|function_code_fastcall|pymain_\w+|Py_RunMain|Py_BytesMain)",
        None,
        "CPython Python/ceval.c, Objects/ (the interpreter)",
    ),
    _lib(
        "runtime",
        r"(^|/)(python3(\.\d+)?|libpython3\.\d+\.so[.\d]*)$",
        "the CPython interpreter binary",
    ),
    _r(
        "runtime",
        r"(blas_thread_server|exec_blas_async_wait|gomp_\w+|GOMP_\w+)$",
        None,
        "OpenBLAS driver/others/blas_server.c, libgomp (idle worker threads spin)",
    ),
    _r(
        "runtime",
        None,
        r"(^|/)(threading|queue|asyncio/\w+|selectors|concurrent/futures/\w+)\.py",
        "CPython Lib/threading.py, queue.py, asyncio/",
    ),
]

RULES: list[Rule] = [
    *CODECS,
    *HASHING,
    *NAR,
    *NETWORK,
    *DATABASE,
    *FILESYSTEM,
    *ALLOCATION,
    *RUNTIME,
]
