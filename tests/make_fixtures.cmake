# Writes the test checkpoints (skips those already present).
function(make name)
  if(EXISTS ${OUT}/${name}/config.json)
    return()
  endif()
  execute_process(COMMAND ${MAKE} --out ${OUT}/${name} ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cc-make-checkpoint failed for ${name}")
  endif()
endfunction()

make(llama --arch llama --layers 2 --hidden 64 --heads 4 --kv_heads 2
     --intermediate 128 --vocab 512 --seed 1)
make(qwen2 --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv_heads 1
     --intermediate 160 --vocab 600 --rope_theta 1000000 --seed 2)
make(llama_rope3_tied_bf16_sharded --arch llama --layers 3 --hidden 96 --heads 6
     --kv_heads 2 --head_dim 16 --intermediate 192 --vocab 700 --rope_scaling llama3
     --rope_theta 500000 --tie --dtype bfloat16 --shards 2 --seed 3)
