# find_package(ColdCompress): the policy plugin SDK, as installed by
# `cmake --install <build> --component plugin_sdk`. Defines the target
# ColdCompress::plugin (coldcompress/plugin.h and LibTorch) and the function
# coldcompress_add_plugin(<name> <source>...).
include(CMakeFindDependencyMacro)
find_dependency(Torch)
get_filename_component(_coldcompress_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.."
  ABSOLUTE)
if(NOT TARGET ColdCompress::plugin)
  add_library(ColdCompress::plugin INTERFACE IMPORTED)
  target_include_directories(ColdCompress::plugin INTERFACE
    "${_coldcompress_prefix}/include")
  separate_arguments(_coldcompress_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(ColdCompress::plugin INTERFACE ${_coldcompress_torch_flags})
  target_compile_features(ColdCompress::plugin INTERFACE cxx_std_17)
  target_link_libraries(ColdCompress::plugin INTERFACE ${TORCH_LIBRARIES})
endif()
include("${CMAKE_CURRENT_LIST_DIR}/ColdCompressPlugin.cmake")
