# troupe::bridge_amqp against a real RabbitMQ: the test binary starts one
# private rabbitmq-server (its own ports, node name, cookie and data directory;
# tests/bridge/rabbitmq_broker.hpp) for all its tests and stops it at the end.
# Skipped with a note when rabbitmq-server is not installed (scripts/deps).
if(TARGET troupe::bridge_amqp)
  # Found in net/bridge, whose variables stay there.
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(RABBITMQ REQUIRED librabbitmq)
  troupe_add_test(bridge_amqp_tests
    SOURCES
      ${CMAKE_CURRENT_LIST_DIR}/amqp_test.cpp
    DEPENDS troupe::bridge_amqp troupe::bridge troupe::runtime
    LABELS broker
    TIMEOUT 180)
  target_include_directories(bridge_amqp_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # The test's own client calls (passive declares, reading the dead-letter queue).
  target_include_directories(bridge_amqp_tests PRIVATE ${RABBITMQ_INCLUDE_DIRS})
  target_link_libraries(bridge_amqp_tests PRIVATE ${RABBITMQ_LINK_LIBRARIES})
endif()
