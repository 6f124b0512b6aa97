# One static library per part folder, from every .c file in it, so a part grows by
# adding files. A folder with no code yet makes no library.
function(tile_part name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/*.c)
  if(NOT srcs)
    return()
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR}/include
                                     PRIVATE ${CMAKE_SOURCE_DIR}/${dir})
  target_link_libraries(${name} PUBLIC ${ARGN})
endfunction()

# One GoogleTest binary per folder of C unit tests under tests/unit/, linked with the
# given parts; each C test becomes a ctest test.
function(tile_unit_tests name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/*.c)
  if(NOT srcs)
    return()
  endif()
  add_executable(${name} ${CMAKE_SOURCE_DIR}/tests/unit/gtest_bridge.cc ${srcs})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
  set(libs)
  foreach(lib ${ARGN})
    if(TARGET ${lib})  # parts without code yet have no library
      list(APPEND libs ${lib})
    endif()
  endforeach()
  target_link_libraries(${name} PRIVATE ${libs} GTest::gtest Threads::Threads m)
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
    PROPERTIES ENVIRONMENT "TILE_SOURCE_DIR=${CMAKE_SOURCE_DIR};TILE_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()
