# The anole C API in a CMake firmware build (Zephyr, STM32CubeIDE and STM32CubeMX CMake
# projects, or any cross build): builds the static library with cargo for the Rust target that
# matches the core and float ABI, and defines the imported library target `anole` (archive and
# include path). Copy this file, or include it from the repository:
#
#   set(ANOLE_DIR /path/to/anole)                    # the repository (default: two levels up)
#   set(ANOLE_CARGO_FLAGS --no-default-features)     # optional: only dense, ReLU, tanh,
#                                                    # MSE and SGD (add e.g. --features
#                                                    # conv,norm,cross-entropy,adam); without
#                                                    # extra-layers it holds 32 layers, not
#                                                    # 64, in smaller handles (ANOLE_LEAN,
#                                                    # defined for you)
#   set(ANOLE_RUST_TARGET thumbv7em-none-eabihf)     # Cortex-M4F/M7 hard float (the default);
#                                                    # thumbv7em-none-eabi: M4/M7 soft float;
#                                                    # thumbv6m-none-eabi: M0/M0+;
#                                                    # thumbv8m.main-none-eabihf: M33 hard float
#   include(${ANOLE_DIR}/firmware-examples/c-cortex-m4/anole.cmake)
#   target_link_libraries(app PRIVATE anole)         # Zephyr: the `app` target
#
# The firmware's float ABI must be the Rust target's (-mfloat-abi=hard for *eabihf; Zephyr:
# CONFIG_FPU=y and CONFIG_FP_HARDABI=y). cargo needs the target (`rustup target add ...`);
# offline, with Debian's rustc-web and rust-web-src, set ANOLE_CARGO to
# ${ANOLE_DIR}/firmware-examples/xcargo, which builds `core` from source.

if(NOT DEFINED ANOLE_DIR)
  get_filename_component(ANOLE_DIR "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
endif()
# A default for what the including project did not set: before CMake 3.21 (policy CMP0126), a
# set(... CACHE ...) would hide the project's own value on the first configure.
macro(anole_default name value type doc)
  if(NOT DEFINED ${name})
    set(${name} "${value}" CACHE ${type} "${doc}")
  endif()
endmacro()
anole_default(ANOLE_RUST_TARGET "thumbv7em-none-eabihf" STRING "Rust target of the anole static library")
anole_default(ANOLE_CARGO "cargo" STRING "cargo, or firmware-examples/xcargo to build offline")
anole_default(ANOLE_TARGET_DIR "${CMAKE_BINARY_DIR}/anole-cargo" PATH "cargo's target directory")
anole_default(ANOLE_CARGO_FLAGS "" STRING "more cargo flags, e.g. --no-default-features")
set(ANOLE_LIB "${ANOLE_TARGET_DIR}/${ANOLE_RUST_TARGET}/release/libanole_capi.a")

# cargo decides what to rebuild, so it runs at every build. Only the static library crate type
# (so that LTO applies), the Rust firmware's release profile, and build-std for toolchains
# without a prebuilt target: this folder's .cargo/config.toml.
add_custom_target(anole_cargo
  COMMAND ${CMAKE_COMMAND} -E env
          CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
          CARGO_PROFILE_RELEASE_PANIC=abort
          ${ANOLE_CARGO} rustc --release -p anole-capi --crate-type staticlib ${ANOLE_CARGO_FLAGS}
          --manifest-path ${ANOLE_DIR}/capi/Cargo.toml
          --target ${ANOLE_RUST_TARGET} --target-dir ${ANOLE_TARGET_DIR}
  WORKING_DIRECTORY ${ANOLE_DIR}/firmware-examples/c-cortex-m4
  BYPRODUCTS ${ANOLE_LIB}
  COMMENT "anole: cargo build of libanole_capi.a for ${ANOLE_RUST_TARGET}"
  VERBATIM)

add_library(anole STATIC IMPORTED GLOBAL)
set_target_properties(anole PROPERTIES
  IMPORTED_LOCATION ${ANOLE_LIB}
  INTERFACE_INCLUDE_DIRECTORIES ${ANOLE_DIR}/capi/include)
# A library without extra-layers: anole.h sizes its handles for 32 layers.
string(FIND "${ANOLE_CARGO_FLAGS}" "extra-layers" anole_extra)
if("--no-default-features" IN_LIST ANOLE_CARGO_FLAGS AND anole_extra EQUAL -1)
  set_target_properties(anole PROPERTIES INTERFACE_COMPILE_DEFINITIONS ANOLE_LEAN)
endif()
add_dependencies(anole anole_cargo)
