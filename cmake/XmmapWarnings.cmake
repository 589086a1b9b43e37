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

# A compiler with cl's options (cl.exe, clang-cl; the msvc leg) gets this definition instead: /W4,
# plus the set above where it is clang-cl (whose -Wall is -Weverything); /WX for errors.
if(MSVC)
  function(xmmap_set_warnings target)
    target_compile_options(${target} PRIVATE /W4)
    if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
      target_compile_options(${target} PRIVATE -Wpedantic -Wconversion -Wsign-conversion -Wshadow
        $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes> -Wformat=2 -Wundef -Wcast-align -Wvla)
    endif()
    if(XMMAP_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  endfunction()
endif()
