# Issue 18's "kill -9 the consuming process mid-stream and restart it", per
# bridge: bridge_kill_tests starts bridge_consumer (a real consuming process,
# bridge_consumer_main.cpp) against a broker it runs itself, kills it -9
# mid-stream, starts a second one and accounts for every message. Each bridge
# is in only when its component is built; Kafka not under ThreadSanitizer (see
# bridge_kafka_tests in CMakeLists.txt: librdkafka's threads crash TSan).
# The RabbitMQ and ActiveMQ parts skip without their broker unless
# TROUPE_REQUIRE_BROKERS=1.
set(kill_tests)
set(kill_consumer_definitions)
set(kill_components)
if(TARGET troupe::bridge_kafka AND NOT TROUPE_SANITIZE STREQUAL "thread")
  list(APPEND kill_tests ${CMAKE_CURRENT_LIST_DIR}/bridge_kill_kafka_test.cpp)
  list(APPEND kill_consumer_definitions TROUPE_KILL_WITH_KAFKA=1)
  list(APPEND kill_components troupe::bridge_kafka)
endif()
if(TARGET troupe::bridge_amqp)
  list(APPEND kill_tests ${CMAKE_CURRENT_LIST_DIR}/bridge_kill_amqp_test.cpp)
  list(APPEND kill_consumer_definitions TROUPE_KILL_WITH_AMQP=1)
  list(APPEND kill_components troupe::bridge_amqp)
endif()
if(TARGET troupe::bridge_stomp)
  list(APPEND kill_tests ${CMAKE_CURRENT_LIST_DIR}/bridge_kill_stomp_test.cpp)
  list(APPEND kill_consumer_definitions TROUPE_KILL_WITH_STOMP=1)
  list(APPEND kill_components troupe::bridge_stomp)
endif()

if(kill_tests)
  add_executable(bridge_consumer ${CMAKE_CURRENT_LIST_DIR}/bridge_consumer_main.cpp)
  target_link_libraries(bridge_consumer PRIVATE ${kill_components} troupe::bridge troupe::runtime)
  target_compile_definitions(bridge_consumer PRIVATE ${kill_consumer_definitions})
  target_include_directories(bridge_consumer PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  troupe_set_options(bridge_consumer)

  troupe_add_test(bridge_kill_tests
    SOURCES ${kill_tests}
    DEPENDS ${kill_components} troupe::bridge troupe::runtime
    LABELS broker
    TIMEOUT 300)
  target_include_directories(bridge_kill_tests PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  add_dependencies(bridge_kill_tests bridge_consumer)
  target_compile_definitions(bridge_kill_tests PRIVATE TROUPE_BRIDGE_CONSUMER="$<TARGET_FILE:bridge_consumer>")
  find_package(PkgConfig REQUIRED)
  if(TARGET troupe::bridge_kafka AND NOT TROUPE_SANITIZE STREQUAL "thread")
    # The parent runs the mock cluster (rdkafka_mock.h) and reads offsets with librdkafka.
    pkg_check_modules(RDKAFKA REQUIRED rdkafka)
    target_include_directories(bridge_kill_tests PRIVATE ${RDKAFKA_INCLUDE_DIRS})
    target_link_libraries(bridge_kill_tests PRIVATE ${RDKAFKA_LINK_LIBRARIES})
  endif()
  if(TARGET troupe::bridge_amqp)
    # rabbitmq_broker.hpp and the test's own client (declares, queue depth).
    pkg_check_modules(RABBITMQ REQUIRED librabbitmq)
    target_include_directories(bridge_kill_tests PRIVATE ${RABBITMQ_INCLUDE_DIRS})
    target_link_libraries(bridge_kill_tests PRIVATE ${RABBITMQ_LINK_LIBRARIES})
  endif()
endif()
