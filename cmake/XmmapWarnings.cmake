# One strict warning set for gcc, clang and MinGW; errors when XMMAP_WERROR is on (CI).
function(xmmap_set_warnings target)
  # -Wstrict-prototypes and -Wmissing-prototypes are C's (a C++ source of the target gets the rest).
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow
    $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes> -Wformat=2 -Wundef -Wcast-align -Wvla)
  if(XMMAP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(XMMAP_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${XMMAP_SANITIZE} -fno-omit-frame-pointer
      -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${XMMAP_SANITIZE})
  endif()
endfunction()
