# Python and Node (TF.js) reference tests. Included from tests/CMakeLists.txt.
# Python needs h5py + numpy: Debian python3-h5py, run by /usr/bin/python3 (PIL optional:
# python3-pil; without it JPEGs are decoded by jpeg-js through node).
set(KERASCPP_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with h5py and numpy for the reference tests")
set(_kc_env "KERASCPP_SHARED_DIR=${KERASCPP_SHARED_DIR}")

add_test(NAME py_converter
  COMMAND ${KERASCPP_PYTHON} ${PROJECT_SOURCE_DIR}/tests/python/test_converter.py)
add_test(NAME py_mobilenet_v2_ref
  COMMAND ${KERASCPP_PYTHON} ${PROJECT_SOURCE_DIR}/tests/python/test_mobilenet_ref.py)
set_tests_properties(py_converter py_mobilenet_v2_ref PROPERTIES ENVIRONMENT "${_kc_env}" TIMEOUT 120)
# Keras 3 .keras / .weights.h5 files (written with h5py + zipfile) converted, then predicted by the
# kerascpp tool and by TF.js (when node is there) against NumPy.
add_test(NAME py_keras3
  COMMAND ${KERASCPP_PYTHON} ${PROJECT_SOURCE_DIR}/tests/python/test_keras3.py)
set_tests_properties(py_keras3 PROPERTIES TIMEOUT 300)
if(TARGET kerascpp_cli)
  set_tests_properties(py_keras3 PROPERTIES ENVIRONMENT "KERASCPP_CLI=$<TARGET_FILE:kerascpp_cli>")
endif()

find_program(KERASCPP_NODE node)
if(KERASCPP_NODE)
  # run_reference.sh installs tests/tfjs/node_modules with `npm ci` on first use (exit 77 = skip
  # when node/npm are missing).
  add_test(NAME tfjs_reference
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/tfjs/run_reference.sh test)
  set_tests_properties(tfjs_reference PROPERTIES ENVIRONMENT "${_kc_env}" TIMEOUT 300
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
  # Fixture for the C++ loader tests: TF.js-saved models with X.npy / Y.npy in
  # ${PROJECT_BINARY_DIR}/tfjs_models/{mlp,cnn,nested}. Use in a C++ test with
  #   set_tests_properties(test_xxx PROPERTIES FIXTURES_REQUIRED tfjs_models)
  # (and text_lstm, rnn_functional, text_gru: Embedding, LSTM, GRU, SimpleRNN)
  add_test(NAME tfjs_make_models
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/tfjs/run_reference.sh models ${PROJECT_BINARY_DIR}/tfjs_models)
  set_tests_properties(tfjs_make_models PROPERTIES FIXTURES_SETUP tfjs_models TIMEOUT 300
                       SKIP_RETURN_CODE 77)
endif()

# C++ model-file tests. test_io loads the TF.js-written fixture models (and runs TF.js on the
# models it saves); test_cli runs the kerascpp tool (tools/kerascpp.cpp, target kerascpp_cli);
# test_mobilenet_v2 runs the converter and the NumPy reference itself.
# (Without node the fixture is not defined and test_io skips those checks.)
set_tests_properties(test_io PROPERTIES FIXTURES_REQUIRED tfjs_models TIMEOUT 300)
# issue 17's non-recurrent layers in TF.js-built models (layers17_*, resize17 in the same fixture)
set_tests_properties(test_io_layers17 PROPERTIES FIXTURES_REQUIRED tfjs_models TIMEOUT 300)
# text and sequence layers: the TF.js-built text_lstm / rnn_functional / text_gru fixture models
set_tests_properties(test_layers_recurrent PROPERTIES FIXTURES_REQUIRED tfjs_models TIMEOUT 300)
set_tests_properties(test_mobilenet_v2 PROPERTIES TIMEOUT 300)
if(TARGET kerascpp_cli AND TARGET test_cli)
  add_dependencies(test_cli kerascpp_cli)
  set_tests_properties(test_cli PROPERTIES ENVIRONMENT "KERASCPP_CLI=$<TARGET_FILE:kerascpp_cli>" TIMEOUT 300)
endif()

# The include rule between the rooms of include/keras (docs/architecture.md).
add_test(NAME layering COMMAND sh ${PROJECT_SOURCE_DIR}/tests/layering/run.sh ${PROJECT_SOURCE_DIR})

# The C++ style of .clang-format (tools/format.sh rewrites; this checks). Skipped without clang-format.
add_test(NAME format COMMAND bash ${PROJECT_SOURCE_DIR}/tools/format.sh --check)
set_tests_properties(format PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
