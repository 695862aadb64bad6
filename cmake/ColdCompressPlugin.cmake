# coldcompress_add_plugin(<name> <source>...): a ColdCompress policy plugin,
# lib<name>.so for `coldcompress-server --policy_plugin`, built against
# ColdCompress::plugin (coldcompress/plugin.h and LibTorch, nothing else).
function(coldcompress_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE ColdCompress::plugin)
  # Only the two symbols COLDCOMPRESS_PLUGIN exports are visible.
  set_target_properties(${name} PROPERTIES PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
endfunction()
