# public_symbols.cmake - writes OUT, the names of the functions HEADER declares with
# MOCKSRV_API, one a line: the only global symbols libmocksrv.a keeps (objcopy
# --keep-global-symbols). cmake -DHEADER=mocksrv.h -DOUT=list -P public_symbols.cmake
file(STRINGS ${HEADER} lines REGEX "^MOCKSRV_API ")
set(names "")
foreach(line IN LISTS lines)
    if(line MATCHES "(mocksrv_[a-z0-9_]+)\\(")
        string(APPEND names "${CMAKE_MATCH_1}\n")
    endif()
endforeach()
if(names STREQUAL "")
    message(FATAL_ERROR "${HEADER}: no MOCKSRV_API function found")
endif()
file(WRITE ${OUT} "${names}")
